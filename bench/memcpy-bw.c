/*
 * Memory copy bandwidth of this machine, the limit that restoring guest memory from the page cache
 * is compared with. It copies one buffer into another with memcpy several times and prints the
 * median rate as "memcpy_mb_s=N" (MB = 10^6 bytes, bytes copied, not read plus written).
 *
 * usage: memcpy-bw [MIB] [REPEATS]   (defaults 512 and 7)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
	int repeats = argc > 2 ? atoi(argv[2]) : 7;
	size_t len = mib << 20;
	double *rates;
	char *src, *dst;

	if (mib == 0 || repeats < 1 || repeats > 100) {
		fprintf(stderr, "usage: memcpy-bw [MIB] [REPEATS]\n");
		return 2;
	}
	src = malloc(len);
	dst = malloc(len);
	rates = calloc((size_t)repeats, sizeof(*rates));
	if (!src || !dst || !rates) {
		fprintf(stderr, "memcpy-bw: cannot allocate 2 x %zu MiB\n", mib);
		return 1;
	}
	/* Fault every page in first, so the timed copies measure copying, not page faults. */
	memset(src, 0x5a, len);
	memset(dst, 0, len);
	for (int i = 0; i < repeats; i++) {
		double start = now_s();

		memcpy(dst, src, len);
		rates[i] = (double)len / (now_s() - start) / 1e6;
		/* Keep the copy observable so the compiler cannot drop it. */
		src[(size_t)i * 4096 % len] ^= dst[len - 1 - (size_t)i];
	}
	qsort(rates, (size_t)repeats, sizeof(*rates), compare_double);
	printf("memcpy_mb_s=%.0f\n", rates[repeats / 2]);
	free(rates);
	free(dst);
	free(src);
	return 0;
}
