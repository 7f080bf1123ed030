/* What a hostile container process tries against the daemon-monitor channel.
 *
 * Built static by tests/security/test_monitor_channel.py and bind-mounted
 * into a busybox container. Prints one line per thing it reached; the test
 * reads those lines and checks what the daemon and the victim show.
 *
 *   attack fds
 *       Every inherited fd from 3 to 63 (other than the ones this program
 *       opened) gets a forged exit record, then a 4 GiB frame header followed
 *       by 64 MiB of payload.  Prints "fd N: wrote B" per fd.
 *   attack sockets VICTIM_PID
 *       Connects to every socket listed in /proc/net/unix (abstract and
 *       path ones).  Prints "connected NAME" for each it reaches.  Where the
 *       first bytes it reads are a monitor's hello for VICTIM_PID (the
 *       victim's host pid), it prints "MONITOR NAME", writes a line to the
 *       victim's stdin, asks for its kill, and prints "LEAKED NAME" if it
 *       reads the victim's output.  Nothing is written to any other socket.
 *   attack sockets any
 *       The same, but every socket it reaches gets the forged frames of
 *       `attack fds` (only for containers without the host's network: their
 *       /proc/net/unix lists their own network namespace's sockets).
 *   Both end with "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static size_t frame(unsigned char *out, int stream, const char *payload, uint32_t len) {
    out[0] = (unsigned char)stream;
    out[1] = out[2] = out[3] = 0;
    out[4] = len >> 24;
    out[5] = len >> 16;
    out[6] = len >> 8;
    out[7] = len;
    if (payload) memcpy(out + 8, payload, len);
    return 8 + (payload ? len : 0);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Write all of buf (non-blocking fd), giving up after `seconds`. */
static size_t write_for(int fd, const unsigned char *buf, size_t len, double seconds) {
    size_t done = 0;
    double end = now() + seconds;
    while (done < len && now() < end) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n > 0) {
            done += n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = {fd, POLLOUT, 0};
            poll(&p, 1, 100);
        } else {
            break;
        }
    }
    return done;
}

/* A forged exit record, then a 4 GiB frame header and 64 MiB of its payload. */
static size_t forge(int fd) {
    static const char exit_json[] =
        "{\"event\":\"exit\",\"exit_code\":0,\"finished_at\":\"2020-01-01T00:00:00Z\","
        "\"oom_killed\":false,\"error\":\"\"}";
    static unsigned char *big;
    size_t big_len = 64u << 20;
    unsigned char forged[256];
    size_t forged_len = frame(forged, 3, exit_json, sizeof exit_json - 1);
    if (!big && !(big = calloc(1, 8 + big_len))) return 0;
    frame(big, 3, NULL, 0xffffffffu);
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    size_t wrote = write_for(fd, forged, forged_len, 1.0);
    return wrote + write_for(fd, big, 8 + big_len, 3.0);
}

static int attack_fds(void) {
    for (int fd = 3; fd < 64; fd++) {
        struct stat st;
        if (fstat(fd, &st) != 0) continue;
        printf("fd %d: wrote %zu\n", fd, forge(fd));
        fflush(stdout);
    }
    return 0;
}

/* Read what arrives within `ms` milliseconds (up to cap bytes). */
static size_t read_for(int fd, char *buf, size_t cap, int ms) {
    size_t got = 0;
    double end = now() + ms / 1000.0;
    while (got < cap) {
        int left = (int)((end - now()) * 1000);
        if (left <= 0) break;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0) break;
        ssize_t n = read(fd, buf + got, cap - got);
        if (n <= 0) break;
        got += n;
    }
    return got;
}

static int contains(const char *buf, size_t len, const char *needle) {
    return memmem(buf, len, needle, strlen(needle)) != NULL;
}

static int attack_sockets(const char *victim_pid) {
    FILE *f = fopen("/proc/net/unix", "r");
    if (!f) {
        perror("/proc/net/unix");
        return 1;
    }
    char hello_needle[64];
    snprintf(hello_needle, sizeof hello_needle, "\"pid\":%s,", victim_pid);
    char line[1024];
    char seen[512][110];
    int nseen = 0;
    int listed = 0;
    fgets(line, sizeof line, f); /* header */
    while (fgets(line, sizeof line, f)) {
        char path[200] = "";
        /* Num RefCount Protocol Flags Type St Inode Path */
        if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %199s", path) != 1) continue;
        int dup = 0;
        for (int i = 0; i < nseen; i++) dup |= strcmp(seen[i], path) == 0;
        if (dup || nseen == 512 || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            continue;
        strcpy(seen[nseen++], path);
        listed++;
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        socklen_t alen;
        size_t plen = strlen(path);
        if (path[0] == '@') { /* abstract: a leading NUL, no terminator */
            memcpy(addr.sun_path + 1, path + 1, plen - 1);
            alen = offsetof(struct sockaddr_un, sun_path) + plen;
        } else {
            memcpy(addr.sun_path, path, plen);
            alen = sizeof addr;
        }
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (connect(s, (struct sockaddr *)&addr, alen) != 0) {
            close(s);
            continue;
        }
        printf("connected %s\n", path);
        fflush(stdout);
        if (strcmp(victim_pid, "any") == 0) {
            printf("forged %s: wrote %zu\n", path, forge(s));
            close(s);
            continue;
        }
        char buf[65536];
        size_t got = read_for(s, buf, sizeof buf, 300);
        if (got >= 8 && buf[0] == 3 && contains(buf, got, hello_needle)) {
            printf("MONITOR %s\n", path);
            fflush(stdout);
            static const char in[] = "INJECTED\n";
            static const char kill_cmd[] = "{\"cmd\":\"kill\",\"signal\":9}";
            unsigned char out[256];
            size_t n = frame(out, 0, in, sizeof in - 1);
            write_for(s, out, n, 1.0);
            got = read_for(s, buf, sizeof buf, 1500);
            if (contains(buf, got, "VICTIM-OUTPUT")) printf("LEAKED %s\n", path);
            n = frame(out, 3, kill_cmd, sizeof kill_cmd - 1);
            write_for(s, out, n, 1.0);
            read_for(s, buf, sizeof buf, 500);
        }
        close(s);
    }
    fclose(f);
    printf("listed %d\n", listed);
    return 0;
}

int main(int argc, char **argv) {
    int rc = 2;
    if (argc == 2 && strcmp(argv[1], "fds") == 0) rc = attack_fds();
    if (argc == 3 && strcmp(argv[1], "sockets") == 0) rc = attack_sockets(argv[2]);
    printf("done\n");
    return rc;
}
