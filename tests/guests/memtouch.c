/*
 * Memory workload for the checkpoint benchmark. It reads "touch=PERCENT dirty=PAGES_PER_SECOND"
 * from the PVH command line (defaults: touch=50 dirty=0), fills PERCENT% of the 4 KiB RAM pages
 * above 2 MiB with a non-zero pattern (the chosen pages are spread evenly over the memory map) and
 * prints "touched N pages". It then rewrites touched pages in order, one pass after another, at
 * about PAGES_PER_SECOND, and prints nothing more until a byte arrives on the serial port. Each
 * burst of input bytes makes it check every touched page and print "verify ok N" or "verify bad
 * ADDRESS" (the page's physical address in hex). The byte 'q' also ends the run after the check,
 * with result 0 or 1. A burst of only 'p' bytes is a ping: the guest prints "pong" and checks
 * nothing, so a benchmark can see that a restored guest executes before it reads its memory.
 *
 * Each page carries the number of the dirty pass that last wrote it (0 for the first fill), and
 * the expected pass of every page follows from the position of the dirty cursor, so the check also
 * catches a page that reverted to an older, self-consistent content.
 *
 * Pacing uses the TSC, calibrated once against PIT channel 2. Left out: RAM above 64 GiB, and
 * pages that overlap the PVH start info, memory map or command line, which are never written.
 */
#include "guest.h"

#define PAGE_SIZE 4096ULL
#define WORDS_PER_PAGE (PAGE_SIZE / sizeof(uint64_t))
#define TOUCH_START (2ULL << 20)
#define PATTERN_PASS_SHIFT 44

#define PIT_HZ 1193182ULL
#define PIT_CALIBRATION_LATCH 11932 /* about 10 ms */
#define PIT_CALIBRATION_MAX_TSC (1ULL << 36)
#define TSC_HZ_FALLBACK 1000000000ULL
/* Serial input is polled this often, not continuously, because each poll exits to the VMM. */
#define SERIAL_POLLS_PER_SECOND 1000

const bool guest_map_all_ram = true;

extern uint64_t guest_mapped_limit;
extern const uint8_t guest_image_end[];

struct memtouch_params {
	uint64_t touch_percent;
	uint64_t dirty_per_second;
};

/* Position in the ordered sequence of touched pages. */
struct page_cursor {
	uint32_t entry;
	uint64_t addr;
	uint64_t acc;
	uint64_t index;
};

static const struct hvm_start_info *start_info;
static const struct hvm_memmap_table_entry *memmap;
static uint64_t cmdline_len;
static struct memtouch_params params = { .touch_percent = 50, .dirty_per_second = 0 };
static uint64_t touched_pages;
/* Dirty pass in progress (the first is 1) and the number of pages it has rewritten so far. */
static uint64_t dirty_pass = 1;
static uint64_t dirty_index;
static struct page_cursor dirty_cursor;

/* Parse the decimal value after "key=" in the command line, leaving *value alone if absent. */
static void cmdline_get(const char *cmdline, const char *key, uint64_t *value)
{
	size_t key_len = 0;

	while (key[key_len])
		key_len++;
	for (const char *p = cmdline; *p; p++) {
		bool at_word_start = p == cmdline || p[-1] == ' ';
		size_t i = 0;

		while (i < key_len && p[i] == key[i])
			i++;
		if (!at_word_start || i != key_len || p[key_len] != '=')
			continue;
		p += key_len + 1;
		if (*p < '0' || *p > '9')
			return;
		*value = 0;
		while (*p >= '0' && *p <= '9')
			*value = *value * 10 + (uint64_t)(*p++ - '0');
		return;
	}
}

static bool range_overlaps(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len)
{
	return a < b + b_len && b < a + a_len;
}

/* Pages holding the boot data are left alone so that a later read of them stays valid. */
static bool page_holds_boot_data(uint64_t addr)
{
	return range_overlaps(addr, PAGE_SIZE, (uintptr_t)start_info, sizeof(*start_info)) ||
	       range_overlaps(addr, PAGE_SIZE, start_info->memmap_paddr,
			      start_info->memmap_entries * sizeof(*memmap)) ||
	       range_overlaps(addr, PAGE_SIZE, start_info->cmdline_paddr, cmdline_len);
}

/*
 * Advance to the next touched page. Candidates are the RAM pages of the memory map above
 * TOUCH_START and below the mapped limit. An error accumulator picks touch_percent of every 100.
 */
static bool cursor_next(struct page_cursor *cur, uint64_t *page)
{
	for (; cur->entry < start_info->memmap_entries; cur->entry++, cur->addr = 0) {
		const struct hvm_memmap_table_entry *e = &memmap[cur->entry];
		uint64_t end = e->addr + e->size;

		if (e->type != HVM_MEMMAP_TYPE_RAM)
			continue;
		if (end > guest_mapped_limit)
			end = guest_mapped_limit;
		if (cur->addr < e->addr)
			cur->addr = (e->addr + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
		if (cur->addr < TOUCH_START)
			cur->addr = TOUCH_START;
		while (cur->addr + PAGE_SIZE <= end) {
			uint64_t addr = cur->addr;

			cur->addr += PAGE_SIZE;
			if (page_holds_boot_data(addr))
				continue;
			cur->acc += params.touch_percent;
			if (cur->acc < 100)
				continue;
			cur->acc -= 100;
			*page = addr;
			cur->index++;
			return true;
		}
	}
	return false;
}

static uint64_t pattern_word(uint64_t addr, uint64_t word, uint64_t pass)
{
	return ((addr + word * 8) << 1 | 1) ^ (pass << PATTERN_PASS_SHIFT);
}

static void page_write(uint64_t addr, uint64_t pass)
{
	uint64_t *p = (uint64_t *)addr;

	for (uint64_t i = 0; i < WORDS_PER_PAGE; i++)
		p[i] = pattern_word(addr, i, pass);
}

static bool page_check(uint64_t addr, uint64_t pass)
{
	const uint64_t *p = (const uint64_t *)addr;

	for (uint64_t i = 0; i < WORDS_PER_PAGE; i++) {
		if (p[i] != pattern_word(addr, i, pass))
			return false;
	}
	return true;
}

static void touch_all(void)
{
	struct page_cursor cur = { 0 };
	uint64_t addr;

	while (cursor_next(&cur, &addr))
		page_write(addr, 0);
	touched_pages = cur.index;
}

static void dirty_one(void)
{
	uint64_t addr;

	if (!cursor_next(&dirty_cursor, &addr)) {
		dirty_cursor = (struct page_cursor){ 0 };
		dirty_pass++;
		dirty_index = 0;
		if (!cursor_next(&dirty_cursor, &addr))
			return;
	}
	page_write(addr, dirty_pass);
	dirty_index++;
}

/* Check every touched page against the pass it must hold, and print the result. */
static bool verify_all(void)
{
	struct page_cursor cur = { 0 };
	uint64_t addr;

	while (cursor_next(&cur, &addr)) {
		uint64_t pass = cur.index <= dirty_index ? dirty_pass : dirty_pass - 1;

		if (!page_check(addr, pass)) {
			serial_puts("verify bad ");
			serial_put_hex64(addr);
			serial_putc('\n');
			return false;
		}
	}
	serial_puts("verify ok ");
	serial_put_dec(cur.index);
	serial_putc('\n');
	return true;
}

/* Measure the TSC rate against PIT channel 2 in one-shot mode, gated through port 0x61. */
static uint64_t tsc_calibrate(void)
{
	uint64_t start, ticks;

	outb(0x61, (uint8_t)((inb(0x61) & ~0x02) | 0x01));
	outb(0x43, 0xb0);
	outb(0x42, PIT_CALIBRATION_LATCH & 0xff);
	outb(0x42, PIT_CALIBRATION_LATCH >> 8);
	start = rdtsc();
	while (!(inb(0x61) & 0x20)) {
		if (rdtsc() - start > PIT_CALIBRATION_MAX_TSC)
			return TSC_HZ_FALLBACK;
	}
	ticks = (rdtsc() - start) * PIT_HZ / PIT_CALIBRATION_LATCH;
	/* A missing PIT reads as all ones and ends the wait at once. */
	return ticks < 10000000 ? TSC_HZ_FALLBACK : ticks;
}

static void dirty_loop(uint64_t tsc_hz)
{
	uint64_t poll_interval = tsc_hz / SERIAL_POLLS_PER_SECOND;
	uint64_t ticks_per_page = 0;
	uint64_t next_dirty = rdtsc(), last_poll = next_dirty;

	if (params.dirty_per_second) {
		ticks_per_page = tsc_hz / params.dirty_per_second;
		if (ticks_per_page == 0)
			ticks_per_page = 1;
	}
	for (;;) {
		uint64_t now = rdtsc();

		if (ticks_per_page && (int64_t)(now - next_dirty) >= 0) {
			dirty_one();
			next_dirty += ticks_per_page;
			/* After a pause (checkpoint, stopped VM) restart the pace. */
			if ((int64_t)(now - next_dirty) > (int64_t)tsc_hz)
				next_dirty = now;
		}
		if (now - last_poll < poll_interval)
			continue;
		last_poll = now;
		if (!serial_byte_ready())
			continue;

		bool quit = false, verify = false;

		while (serial_byte_ready()) {
			uint8_t byte = serial_read_byte();

			quit |= byte == 'q';
			verify |= byte != 'p';
		}
		/* A burst of only 'p' bytes is a ping: it shows the guest runs, without a check. */
		if (!verify) {
			serial_puts("pong\n");
			continue;
		}
		bool ok = verify_all();

		if (quit)
			guest_exit(ok ? GUEST_RESULT_PASS : GUEST_RESULT_FAIL);
	}
}

int guest_main(const struct hvm_start_info *si)
{
	uint64_t tsc_hz;

	start_info = si;
	memmap = (const struct hvm_memmap_table_entry *)si->memmap_paddr;
	if (si->version < 1 || !si->memmap_paddr || !si->memmap_entries) {
		serial_puts("no PVH memory map\n");
		return GUEST_RESULT_BAD_BOOT;
	}
	if ((uintptr_t)guest_image_end > TOUCH_START) {
		serial_puts("guest image reaches above 2 MiB\n");
		return GUEST_RESULT_FAIL;
	}
	if (si->cmdline_paddr) {
		const char *cmdline = (const char *)si->cmdline_paddr;

		while (cmdline[cmdline_len++])
			;
		cmdline_get(cmdline, "touch", &params.touch_percent);
		cmdline_get(cmdline, "dirty", &params.dirty_per_second);
	}
	if (params.touch_percent > 100)
		params.touch_percent = 100;

	tsc_hz = tsc_calibrate();
	touch_all();
	serial_puts("touched ");
	serial_put_dec(touched_pages);
	serial_puts(" pages\n");
	dirty_loop(tsc_hz);
	return GUEST_RESULT_PASS;
}
