/* Smallest guest: one line on the serial console, then result 0. */
#include "guest.h"

int guest_main(const struct hvm_start_info *si)
{
	serial_puts("hello from guest\n");
	return GUEST_RESULT_PASS;
}
