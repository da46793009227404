/* The run directory's lock (run_lock.h): flock(LOCK_EX | LOCK_NB) on
 * RUN/.lock, with the holder's host and pid written into it. */
#define _DEFAULT_SOURCE /* flock, gethostname */
#include "train/run_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static const char LOCK_FILE[] = ".lock";

int run_lock_acquire(run_lock *lock, const char *dir, kpo_error *err)
{
    if (lock->fd >= 0)
        return KPO_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return error_set(err, "%s: cannot open the run's lock file: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int why = errno;
        char holder[256] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        close(fd);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        if (why != EWOULDBLOCK)
            return error_set(err, "%s: cannot lock: %s", path, strerror(why));
        return error_set(err, "%s: locked by another kpo train (%s); one trainer per run "
                              "directory: wait for it to end, stop it, or choose another run.out",
                         dir, holder[0] ? holder : "holder unknown");
    }
    char host[128] = "?", text[256];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    int n = snprintf(text, sizeof text, "host %s, pid %ld\n", host, (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        int why = errno;
        close(fd);
        return error_set(err, "%s: cannot write the run's lock file: %s", path, strerror(why));
    }
    lock->fd = fd;
    return KPO_OK;
}

void run_lock_release(run_lock *lock)
{
    if (lock->fd >= 0)
        close(lock->fd); /* drops the flock */
    lock->fd = -1;
}
