/* Placeholder (issue 7, being written). */
int main(void) { return 0; }
