/*
 * xenlab-probe: the meter's prober in C (the same schedule and output as probe_script.py,
 * at a fraction of its CPU). Probe n leaves at start + n * interval whatever happens;
 * replies are stamped by the kernel on arrival (SO_TIMESTAMPNS) and printed in ping's -D
 * format plus the send time:
 *
 *   [RECV_TIME] 64 bytes from ADDR: icmp_seq=N ttl=T time=RTT ms sent=SEND_TIME
 *
 *   xenlab-probe IPV4_ADDRESS INTERVAL_S      (root: a raw ICMP socket; SIGINT/SIGTERM end it)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop = 0;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint16_t checksum(const uint8_t *data, size_t len) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)(data[i] << 8 | data[i + 1]);
    if (len & 1) sum += (uint32_t)(data[len - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s TARGET INTERVAL_S\n", argv[0]);
        return 2;
    }
    double interval = strtod(argv[2], NULL);
    /* an IPv4 address, never a name: the static build then needs no NSS at run time */
    struct sockaddr_in to = {.sin_family = AF_INET};
    if (interval <= 0 || inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
        fprintf(stderr, "xenlab-probe: bad target (an IPv4 address) or interval\n");
        return 2;
    }
    char address[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &to.sin_addr, address, sizeof address);
    int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMP);
    if (fd < 0) {
        perror("xenlab-probe: raw socket (root needed)");
        return 1;
    }
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    prctl(PR_SET_TIMERSLACK, 1000UL);  /* wake within 1 us of the schedule, not 50 us */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    printf("PING %s (%s) 56(84) bytes of data.\n", argv[1], address);
    fflush(stdout);

    static double sent_at[65536];
    uint16_t ident = (uint16_t)(getpid() & 0xffff);
    uint8_t packet[64] = {0};
    memcpy(packet + 8, "xenlab-probe", 12);
    memset(packet + 20, '.', 44);
    double mono0 = mono(), wall0 = wall(), next_send = mono0, last_flush = mono0;
    unsigned long seq = 0, transmitted = 0, received = 0;
    while (!stop) {
        double now = mono();
        if (now >= next_send) {
            seq++;
            packet[0] = 8; packet[1] = 0; packet[2] = packet[3] = 0;
            packet[4] = ident >> 8; packet[5] = ident & 0xff;
            packet[6] = (seq >> 8) & 0xff; packet[7] = seq & 0xff;
            uint16_t sum = checksum(packet, sizeof packet);
            packet[2] = sum >> 8; packet[3] = sum & 0xff;
            sendto(fd, packet, sizeof packet, 0, (struct sockaddr *)&to, sizeof to);
            sent_at[seq & 0xffff] = wall0 + (now - mono0);
            transmitted++;
            next_send = mono0 + seq * interval;
            if (next_send < now) next_send = now + interval;  /* fell behind: never burst */
            continue;
        }
        double wait = next_send - now;
        struct timespec timeout = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        struct pollfd p = {fd, POLLIN, 0};
        if (ppoll(&p, 1, &timeout, NULL) <= 0) continue;
        for (;;) {
            uint8_t buf[2048];
            char control[256];
            struct iovec iov = {buf, sizeof buf};
            struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                                 .msg_controllen = sizeof control};
            ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
            if (n < 0) break;
            double arrived = wall0 + (mono() - mono0);
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    arrived = ts.tv_sec + ts.tv_nsec / 1e9;
                }
            }
            int ihl = (buf[0] & 0x0f) * 4;
            if (n < ihl + 8 || buf[ihl] != 0) continue;
            uint16_t rid = (uint16_t)(buf[ihl + 4] << 8 | buf[ihl + 5]);
            uint16_t rseq = (uint16_t)(buf[ihl + 6] << 8 | buf[ihl + 7]);
            if (rid != ident || sent_at[rseq] == 0) continue;
            double when = sent_at[rseq];
            sent_at[rseq] = 0;
            received++;
            printf("[%.6f] %zd bytes from %s: icmp_seq=%u ttl=%u time=%.3f ms sent=%.6f\n",
                   arrived, n - ihl, address, rseq, buf[8], (arrived - when) * 1000, when);
        }
        if (mono() - last_flush >= 0.02) {  /* a write every 20 ms, not every reply */
            fflush(stdout);
            last_flush = mono();
        }
    }
    double loss = transmitted ? 100.0 * (transmitted - received) / transmitted : 0.0;
    printf("\n--- %s ping statistics ---\n%lu packets transmitted, %lu received, %g%% packet "
           "loss, time %ldms\n", argv[1], transmitted, received, loss,
           (long)((mono() - mono0) * 1000));
    fflush(stdout);
    return 0;
}
