/*
 * xenlab-memcheck: guest memory integrity across live migration, and a memory-dirtying load.
 *
 *   xenlab-memcheck SIZE_MIB RATE_MIB_PER_S STATUS_FILE [HOT_PAGES]
 *
 * Fills SIZE_MIB of memory with a pattern derived from each page's index and its generation,
 * then walks the pages forever at RATE_MIB_PER_S: each page is verified against the pattern
 * it was last written with, then rewritten with the next generation. A page that does not
 * hold what was written into it is a mismatch. Every 100 ms the status line is written to
 * STATUS_FILE (atomically):
 *
 *   pages=N rounds=R verified=V mismatches=M first_bad_page=P rate_mib=X uptime_ms=T sweeps=S
 *
 * HOT_PAGES (default 0) pages at the end of the region are rewritten all the time (the
 * loop then never sleeps), like a kernel's stacks and timers, with their generation kept
 * in a CPU register (see hot_batch): their TLB entries stay hot in TCG, which is where QEMU
 * before 9.0 lost writes during migration (the dirty bitmap fast path left the TLB stale).
 *
 * SIGUSR1 asks for a sweep: every page is verified at once (not rewritten), and `sweeps`
 * counts the sweeps done. A migration that loses or corrupts guest memory shows as
 * mismatches > 0 after it: a sweep right after the migration looks at every page.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / sizeof(uint64_t))

static volatile sig_atomic_t sweep_requested = 0;

static void on_usr1(int sig) {
    (void)sig;
    sweep_requested = 1;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t pattern(uint64_t page, uint64_t gen, uint64_t word) {
    uint64_t x = (page << 32) ^ (gen << 12) ^ word ^ 0x9e3779b97f4a7c15ull;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static void fill(uint64_t *p, uint64_t page, uint64_t gen) {
    for (uint64_t w = 0; w < WORDS; w++) p[w] = pattern(page, gen, w);
}

static int verify(const uint64_t *p, uint64_t page, uint64_t gen) {
    for (uint64_t w = 0; w < WORDS; w++)
        if (p[w] != pattern(page, gen, w)) return 0;
    return 1;
}

/* Hot pages, `passes` times over: each page must still hold generation g - 1 (what this
 * very loop wrote last), then gets generation g. g lives in a register for the whole batch,
 * and registers travel exactly with a migration: a write the migration lost leaves the
 * page older than the register says, and the next pass sees it. */
static uint64_t hot_batch(uint64_t *mem, uint64_t hot, uint64_t g, uint64_t passes,
                          uint64_t *bad, int64_t *first_bad) {
    for (uint64_t n = 0; n < passes; n++, g++) {
        for (uint64_t h = 0; h < hot; h++) {
            uint64_t *p = mem + h * WORDS;
            for (uint64_t w = 0; w < WORDS; w++) {
                if (p[w] != pattern(h, g - 1, w)) {
                    (*bad)++;
                    if (*first_bad < 0) *first_bad = (int64_t)h;
                    break;
                }
            }
            for (uint64_t w = 0; w < WORDS; w++) p[w] = pattern(h, g, w);
        }
    }
    return g;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s SIZE_MIB RATE_MIB_PER_S STATUS_FILE [HOT_PAGES]\n", argv[0]);
        return 2;
    }
    uint64_t size_mib = strtoull(argv[1], NULL, 10);
    double rate_mib = strtod(argv[2], NULL);
    const char *status = argv[3];
    uint64_t pages = size_mib * 256;
    uint64_t hot = argc == 5 ? strtoull(argv[4], NULL, 10) : 0;

    if (pages == 0 || rate_mib <= 0) {
        fprintf(stderr, "SIZE_MIB and RATE_MIB_PER_S must be positive\n");
        return 2;
    }
    uint64_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    uint32_t *gens = calloc(pages, sizeof(uint32_t));
    if (mem == MAP_FAILED || !gens) {
        perror("xenlab-memcheck: memory");
        return 1;
    }
    for (uint64_t i = 0; i < pages; i++) fill(mem + i * WORDS, i, 0);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", status);
    uint64_t rounds = 0, verified = 0, mismatches = 0, i = 0, sweeps = 0;
    signal(SIGUSR1, on_usr1);
    uint64_t hot_gen = 1;
    if (hot >= pages) hot = pages - 1;
    pages -= hot;  /* the hot pages are the last ones, apart from the walked ones */
    for (uint64_t h = 0; h < hot; h++) fill(mem + (pages + h) * WORDS, h, 0);
    int64_t first_bad = -1;
    double pages_per_ns = rate_mib * 256.0 / 1e9;
    uint64_t start = now_ns(), last_status = 0, done = 0;
    for (;;) {
        uint64_t t = now_ns();
        uint64_t due = (uint64_t)((double)(t - start) * pages_per_ns);
        uint64_t chunk = 0;
        /* at most 256 pages (1 MiB) between looks at the clock: a guest too slow for the
           rate still reports its status */
        while (done < due && chunk++ < 256) {
            uint64_t *p = mem + i * WORDS;
            if (!verify(p, i, gens[i])) {
                mismatches++;
                if (first_bad < 0) first_bad = (int64_t)i;
            }
            verified++;
            gens[i]++;
            fill(p, i, gens[i]);
            done++;
            if (++i == pages) { i = 0; rounds++; }
        }
        if (hot) {
            hot_gen = hot_batch(mem + pages * WORDS, hot, hot_gen, 64, &mismatches,
                                &first_bad);
            verified += 64 * hot;
        }
        int force_status = 0;
        if (sweep_requested) {
            sweep_requested = 0;
            for (uint64_t k = 0; k < pages; k++) {
                if (!verify(mem + k * WORDS, k, gens[k])) {
                    mismatches++;
                    if (first_bad < 0) first_bad = (int64_t)k;
                }
            }
            sweeps++;
            force_status = 1;
        }
        if (force_status || t - last_status >= 100000000ull) {
            FILE *f = fopen(tmp, "w");
            if (f) {
                fprintf(f, "pages=%llu rounds=%llu verified=%llu mismatches=%llu first_bad_page=%lld "
                        "rate_mib=%g uptime_ms=%llu sweeps=%llu\n", (unsigned long long)pages,
                        (unsigned long long)rounds, (unsigned long long)verified,
                        (unsigned long long)mismatches, (long long)first_bad, rate_mib,
                        (unsigned long long)((t - start) / 1000000ull),
                        (unsigned long long)sweeps);
                fclose(f);
                rename(tmp, status);
            }
            last_status = t;
        }
        if (done >= due && hot == 0) {  /* with hot pages it never sleeps: they stay hot */
            struct timespec nap = {0, 1000000};  /* 1 ms */
            nanosleep(&nap, NULL);
        }
    }
}
