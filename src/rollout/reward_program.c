/* The `program` reward: a user's grader process kept alive across calls
 * and spoken to one JSON line per response (reward_program.h). */
#include "rollout/reward_program.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/timer.h"
#include "tokenizer/text_buf.h"

extern char **environ;

/* An answer longer than this is taken for a runaway program, not a score. */
enum { ANSWER_MAX = 1 << 20 };

struct reward_program {
    char *command;
    double timeout_s;
    pid_t pid;     /* also its process group: the shell and what it starts */
    int to_fd;     /* its stdin */
    int from_fd;   /* its stdout */
    int failed;    /* a call failed: the stream may be out of step, never ask again */
    int reaped;
    text_buf pending; /* bytes read past the last answer's newline */
};

/* Commands can be long; messages show their first 200 bytes. */
#define NAMED "reward program \"%.200s\""

static void ignore_sigpipe(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
}

static int set_flags(int fd, int nonblocking)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -1;
    if (!nonblocking)
        return 0;
    fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int reward_program_start(const char *command, double timeout_s, reward_program **out,
                         kpo_error *err)
{
    *out = NULL;
    if (!command || !command[0])
        return error_set(err, "reward program: no command given (rollout.reward_program, "
                              "--reward-program or --program)");
    reward_program *p = calloc(1, sizeof *p);
    if (!p || !(p->command = strdup(command))) {
        free(p);
        return error_set(err, "reward program: out of memory");
    }
    p->timeout_s = timeout_s > 0 ? timeout_s : REWARD_PROGRAM_DEFAULT_TIMEOUT;
    p->to_fd = p->from_fd = -1;
    text_buf_init(&p->pending);
    int to[2] = {-1, -1}, from[2] = {-1, -1};
    if (pipe(to) != 0 || pipe(from) != 0 || set_flags(to[0], 0) || set_flags(to[1], 1) ||
        set_flags(from[0], 1) || set_flags(from[1], 0)) {
        error_set(err, NAMED ": cannot make pipes: %s", command, strerror(errno));
        goto fail;
    }
    ignore_sigpipe();
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    /* dup2 clears close-on-exec on the copies, so only 0 and 1 reach the
     * program. Its own process group lets a timeout kill the shell and
     * whatever it started; SIGPIPE goes back to the default kpo ignores. */
    posix_spawn_file_actions_adddup2(&actions, to[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, from[1], STDOUT_FILENO);
    sigset_t defaults, none;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);
    char *argv[] = {"sh", "-c", p->command, NULL};
    int rc = posix_spawn(&p->pid, "/bin/sh", &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        error_set(err, NAMED ": cannot start /bin/sh: %s", command, strerror(rc));
        goto fail;
    }
    close(to[0]);
    close(from[1]);
    p->to_fd = to[1];
    p->from_fd = from[0];
    *out = p;
    return KPO_OK;
fail:
    for (int i = 0; i < 2; i++) {
        if (to[i] >= 0)
            close(to[i]);
        if (from[i] >= 0)
            close(from[i]);
    }
    free(p->command);
    free(p);
    return KPO_ERR;
}

/* Why the program stopped, once it has (waits up to wait_s for it). */
static void describe_exit(reward_program *p, double wait_s, char *why, size_t size)
{
    int status = 0;
    pid_t got = 0;
    const double until = timer_now() + wait_s;
    while (!p->reaped && (got = waitpid(p->pid, &status, WNOHANG)) == 0 && timer_now() < until) {
        struct timespec ms = {0, 10 * 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    if (got == p->pid) {
        p->reaped = 1;
        if (WIFEXITED(status))
            snprintf(why, size, "exited with status %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            snprintf(why, size, "was killed by signal %d", WTERMSIG(status));
        else
            snprintf(why, size, "stopped");
        return;
    }
    snprintf(why, size, "closed its stdout");
}

static void kill_program(reward_program *p)
{
    if (p->reaped)
        return;
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->reaped = 1;
}

static int died(reward_program *p, const char *doing, kpo_error *err)
{
    char why[64];
    describe_exit(p, 1.0, why, sizeof why);
    kill_program(p);
    return error_set(err, NAMED " %s %s", p->command, why, doing);
}

/* Waits for fd to be ready before the deadline: 1 ready, 0 timed out. */
static int wait_ready(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - timer_now();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int ms = left > 1e6 ? 1000000000 : (int)(left * 1000) + 1;
        int n = poll(&pfd, 1, ms);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return 1; /* let the read or write report it */
    }
}

static int timed_out(reward_program *p, kpo_error *err)
{
    kill_program(p);
    return error_set(err, NAMED " gave no answer within %g s (killed it; rollout.reward_timeout "
                          "or --reward-timeout sets the limit)", p->command, p->timeout_s);
}

static int send_all(reward_program *p, const char *data, size_t n, double deadline,
                    kpo_error *err)
{
    while (n > 0) {
        if (!wait_ready(p->to_fd, POLLOUT, deadline))
            return timed_out(p, err);
        ssize_t w = write(p->to_fd, data, n);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w < 0)
            return errno == EPIPE ? died(p, "before reading its request", err)
                                  : error_set(err, NAMED ": writing to it: %s", p->command,
                                              strerror(errno));
        data += w;
        n -= (size_t)w;
    }
    return KPO_OK;
}

/* The next line from the program into *line (malloc'ed, no newline). */
static int receive_line(reward_program *p, double deadline, char **line, kpo_error *err)
{
    for (;;) {
        char *nl = p->pending.data ? memchr(p->pending.data, '\n', p->pending.len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - p->pending.data);
            *line = strndup(p->pending.data, n);
            size_t rest = p->pending.len - n - 1;
            memmove(p->pending.data, nl + 1, rest);
            p->pending.len = rest;
            p->pending.data[rest] = '\0';
            return *line ? KPO_OK : error_set(err, "reward program: out of memory");
        }
        if (p->pending.len > ANSWER_MAX)
            return error_set(err, NAMED " answered a line over %d bytes", p->command, ANSWER_MAX);
        if (!wait_ready(p->from_fd, POLLIN, deadline))
            return timed_out(p, err);
        char chunk[65536];
        ssize_t r = read(p->from_fd, chunk, sizeof chunk);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r < 0)
            return error_set(err, NAMED ": reading from it: %s", p->command, strerror(errno));
        if (r == 0)
            return died(p, p->pending.len ? "in the middle of an answer" : "before answering",
                        err);
        text_buf_append(&p->pending, chunk, (size_t)r);
        if (p->pending.failed)
            return error_set(err, "reward program: out of memory");
    }
}

static int strip_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

int reward_program_parse_answer(const char *line, reward_result *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    while (strip_is_space(*line))
        line++;
    size_t n = strlen(line);
    while (n > 0 && strip_is_space(line[n - 1]))
        n--;
    if (n == 0)
        return error_set(err, "an empty line, not a score");
    out->extracted = true;
    if (line[0] != '{') {
        char *text = strndup(line, n), *end;
        if (!text)
            return error_set(err, "out of memory");
        errno = 0;
        out->score = strtod(text, &end);
        int ok = end != text && *end == '\0' && isfinite(out->score);
        free(text);
        if (!ok)
            return error_set(err, "'%.*s' is not a finite number or a JSON object",
                             (int)(n > 80 ? 80 : n), line);
        out->correct = out->score > 0;
        return KPO_OK;
    }
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(line, n, &end, false);
    int status = KPO_OK;
    if (!o || !cJSON_IsObject(o) || (size_t)(end - line) != n)
        status = error_set(err, "'%.*s' is not a JSON object", (int)(n > 80 ? 80 : n), line);
    const cJSON *score = o ? cJSON_GetObjectItemCaseSensitive(o, "score") : NULL;
    const cJSON *correct = o ? cJSON_GetObjectItemCaseSensitive(o, "correct") : NULL;
    const cJSON *pred = o ? cJSON_GetObjectItemCaseSensitive(o, "pred") : NULL;
    const cJSON *extracted = o ? cJSON_GetObjectItemCaseSensitive(o, "extracted") : NULL;
    if (status == KPO_OK && (!cJSON_IsNumber(score) || !isfinite(score->valuedouble)))
        status = error_set(err, "\"score\" is %s, not a finite number",
                           score ? "of the wrong type" : "missing");
    else if (status == KPO_OK && correct && !cJSON_IsBool(correct))
        status = error_set(err, "\"correct\" is not true or false");
    else if (status == KPO_OK && pred && !cJSON_IsString(pred))
        status = error_set(err, "\"pred\" is not a string");
    else if (status == KPO_OK && extracted && !cJSON_IsBool(extracted))
        status = error_set(err, "\"extracted\" is not true or false");
    if (status == KPO_OK) {
        out->score = score->valuedouble;
        out->correct = correct ? cJSON_IsTrue(correct) : out->score > 0;
        out->extracted = extracted ? cJSON_IsTrue(extracted) : true;
        if (pred)
            snprintf(out->pred, sizeof out->pred, "%s", pred->valuestring);
    }
    cJSON_Delete(o);
    return status;
}

static char *request_line(const char *response, const char *gold, const char *problem)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "response", response) ||
        !cJSON_AddStringToObject(o, "gold", gold) ||
        !(problem ? cJSON_AddStringToObject(o, "problem", problem)
                  : cJSON_AddNullToObject(o, "problem"))) {
        cJSON_Delete(o);
        return NULL;
    }
    /* Unformatted output escapes newlines: one request is one line. */
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *line = text ? malloc(strlen(text) + 2) : NULL;
    if (line)
        sprintf(line, "%s\n", text);
    free(text);
    return line;
}

int reward_program_ask(reward_program *p, const char *response, const char *gold,
                       const char *problem, reward_result *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    if (p->failed)
        return error_set(err, NAMED " failed earlier; it is not asked again", p->command);
    char *request = request_line(response, gold, problem), *answer = NULL;
    if (!request)
        return error_set(err, "reward program: out of memory");
    const double deadline = timer_now() + p->timeout_s;
    int status = send_all(p, request, strlen(request), deadline, err);
    free(request);
    if (status == KPO_OK)
        status = receive_line(p, deadline, &answer, err);
    if (status == KPO_OK && reward_program_parse_answer(answer, out, err) != KPO_OK)
        status = error_prefix(err, NAMED " answered garbage: ", p->command);
    free(answer);
    p->failed = status != KPO_OK;
    return status;
}

void reward_program_close(reward_program *p)
{
    if (!p)
        return;
    if (p->to_fd >= 0)
        close(p->to_fd);
    if (!p->reaped) {
        char why[64];
        describe_exit(p, 2.0, why, sizeof why);
        kill_program(p);
    }
    if (p->from_fd >= 0)
        close(p->from_fd);
    text_buf_free(&p->pending);
    free(p->command);
    free(p);
}

/* One grader per process: callers hold only the command line. */
static reward_program *shared_program;

static void close_shared(void)
{
    reward_program_close(shared_program);
    shared_program = NULL;
}

int reward_program_shared(const char *command, double timeout_s, reward_program **out,
                          kpo_error *err)
{
    static int registered;
    double wanted = timeout_s > 0 ? timeout_s : REWARD_PROGRAM_DEFAULT_TIMEOUT;
    if (shared_program && command && strcmp(shared_program->command, command) == 0) {
        shared_program->timeout_s = wanted;
        *out = shared_program;
        return KPO_OK;
    }
    close_shared();
    if (!registered) {
        atexit(close_shared);
        registered = 1;
    }
    if (reward_program_start(command, wanted, &shared_program, err) != KPO_OK)
        return KPO_ERR;
    *out = shared_program;
    return KPO_OK;
}

int reward_score_program(const char *response, const char *gold, const reward_options *opt,
                         reward_result *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    reward_program *p;
    if (reward_program_shared(opt ? opt->program : NULL, opt ? opt->program_timeout : 0, &p,
                              err) != KPO_OK)
        return KPO_ERR;
    return reward_program_ask(p, response, gold, opt->problem, out, err);
}
