/*
 * supervise: run one program on the board under a time limit and report what it cost.
 *
 *   supervise TIMEOUT_S STATS_FILE PROGRAM [ARGS...]
 *   supervise --lock LOCK_FILE WAIT_S PROGRAM [ARGS...]
 *
 * The program runs in a process group of its own, so a timeout (or a SIGTERM/SIGHUP/SIGINT to supervise, which
 * is how a host-side Ctrl-C reaches it) kills its whole process tree. supervise also watches its standard
 * input, which the host keeps open and never writes to: end of file there means the SSH session is gone (the
 * host process was killed, or the network cut), and the process tree is killed as well. When it ends,
 * STATS_FILE receives one JSON object: exit status or signal, whether the limit was hit, wall time, user and
 * system CPU time and peak resident memory (ru_maxrss, which the kernel fills from the same high-water mark
 * as VmHWM). It is written under a temporary name and renamed, so a reader never sees half of it.
 * Exit status: the program's, or 128 + signal number, as a shell would report it.
 *
 * --lock: take an exclusive flock(2) on LOCK_FILE (waiting at most WAIT_S seconds, exit status 75 if it stays
 * taken) and exec PROGRAM with the lock held; it is released when PROGRAM and its children exit, however they
 * end. The deploy directory's `current` switch and pruning run under it, so two deploys never interleave there.
 *
 * Built static for the board by deploy/bundle.py: the board has no compiler and no libraries to rely on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_reason; /* 0: none, 1: timeout, 2: asked to stop, 3: session lost */
static volatile pid_t group;               /* the program's process group, once it exists */

/* kill() is async-signal-safe: killing from the handler leaves no window between a check and wait4(). */
static void stop_group(int reason)
{
    if (!stop_reason)
        stop_reason = reason;
    if (group > 0)
        kill(-group, SIGKILL);
}
static void on_alarm(int sig) { (void)sig; stop_group(1); }
static void on_stop(int sig) { (void)sig; stop_group(2); }

static double seconds(struct timeval tv) { return tv.tv_sec + tv.tv_usec / 1e6; }

static int lock_and_exec(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: supervise --lock LOCK_FILE WAIT_S PROGRAM [ARGS...]\n");
        return 2;
    }
    char *end;
    long wait_s = strtol(argv[3], &end, 10);
    if (*end || wait_s <= 0) {
        fprintf(stderr, "supervise: bad lock wait '%s'\n", argv[3]);
        return 2;
    }
    int fd = open(argv[2], O_RDWR | O_CREAT, 0600); /* no O_CLOEXEC: the lock goes along with the exec */
    if (fd < 0) {
        fprintf(stderr, "supervise: cannot open lock %s: %s\n", argv[2], strerror(errno));
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* only interrupts flock(); nothing runs yet */
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)wait_s);
    if (flock(fd, LOCK_EX) != 0) {
        fprintf(stderr, "supervise: lock %s still taken after %ld s\n", argv[2], wait_s);
        return 75;
    }
    alarm(0);
    signal(SIGALRM, SIG_DFL);
    execv(argv[4], argv + 4);
    fprintf(stderr, "supervise: cannot run %s: %s\n", argv[4], strerror(errno));
    return 127;
}

/* End of file (or an error) on standard input: the SSH session that started us is gone. */
static int session_lost(void)
{
    struct pollfd p = { .fd = 0, .events = POLLIN };
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLERR | POLLNVAL))
        return 1;
    char buffer[256];
    ssize_t n = read(0, buffer, sizeof buffer);
    return n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--lock") == 0)
        return lock_and_exec(argc, argv);
    if (argc < 4) {
        fprintf(stderr, "usage: supervise TIMEOUT_S STATS_FILE PROGRAM [ARGS...]\n");
        return 2;
    }
    char *end;
    long timeout = strtol(argv[1], &end, 10);
    if (*end || timeout <= 0) {
        fprintf(stderr, "supervise: bad timeout '%s'\n", argv[1]);
        return 2;
    }
    const char *stats_path = argv[2];

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t child = fork();
    if (child < 0) {
        perror("supervise: fork");
        return 2;
    }
    if (child == 0) {
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) {
            dup2(null, 0); /* standard input is the session watch, not the program's */
            close(null);
        }
        execv(argv[3], argv + 3);
        fprintf(stderr, "supervise: cannot run %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    setpgid(child, child); /* also here, so the group exists before any kill */
    group = child;
    if (stop_reason)
        stop_group(stop_reason);
    alarm((unsigned)timeout);

    int status = 0;
    struct rusage ru;
    int watching = 1;
    for (;;) {
        pid_t r = wait4(child, &status, WNOHANG, &ru);
        if (r == child)
            break;
        if (r < 0 && errno != EINTR) {
            perror("supervise: wait4");
            return 2;
        }
        if (watching && session_lost()) {
            watching = 0;
            stop_group(3);
        }
        struct timespec pause = { 0, 100 * 1000 * 1000 };
        nanosleep(&pause, NULL);
    }
    kill(-child, SIGKILL); /* anything the program left behind in its group */
    clock_gettime(CLOCK_MONOTONIC, &t1);

    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", stats_path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "supervise: cannot write %s: %s\n", tmp, strerror(errno));
        return code ? code : 2;
    }
    fprintf(f,
            "{\"exit_code\": %d, \"signal\": %d, \"signal_name\": \"%s\", \"timed_out\": %s, \"stopped\": %s, \"session_lost\": %s, "
            "\"timeout_s\": %ld, \"wall_s\": %.3f, \"user_s\": %.3f, \"sys_s\": %.3f, \"maxrss_kb\": %ld}\n",
            WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
            WIFSIGNALED(status) ? sigabbrev_np(WTERMSIG(status)) : "", stop_reason == 1 ? "true" : "false",
            stop_reason == 2 ? "true" : "false", stop_reason == 3 ? "true" : "false", timeout,
            (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, seconds(ru.ru_utime),
            seconds(ru.ru_stime), ru.ru_maxrss);
    fclose(f);
    rename(tmp, stats_path);
    return code;
}
