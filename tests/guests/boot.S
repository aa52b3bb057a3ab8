/*
 * Boot path shared by the small test guests: the Xen PVH entry note, the switch from 32-bit
 * protected mode to long mode, the drop to ring 3, the real-mode entry of application processors,
 * and the ring-0 exception and interrupt stubs.
 *
 * The PVH loader enters pvh_entry in 32-bit protected mode with paging off, flat segments, no stack
 * and EBX holding the physical address of struct hvm_start_info. Everything here is short because
 * ring-0 instructions are emulated on the KVM the project is tested on. The page tables that
 * identity-map the low 4 GiB with 2 MiB user pages are built by the assembler into the image, so
 * the boot CPU runs about 560 ring-0 instructions (counted under QEMU TCG for hello.elf), most of
 * them in kernel_cpu_init filling the IDT, before it enters ring 3.
 *
 * Left out: more than GUEST_MAX_CPUS CPUs, SSE state (the C code is built with
 * -mgeneral-regs-only), and any return to ring 0 other than through exceptions and interrupts.
 */

#define SEL_KCODE32 0x08
#define SEL_KCODE64 0x10
#define SEL_KDATA 0x18
#define SEL_UDATA 0x20
#define SEL_UCODE64 0x28
#define SEL_TSS0 0x30

#define KSTACK_SIZE 0x4000
#define USTACK_SIZE 0x10000

#define CR0_PE 0x00000001
#define CR0_NW 0x20000000
#define CR0_CD 0x40000000
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define CR4_OSFXSR 0x200
#define CR4_OSXMMEXCPT 0x400
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100

/* Ring 3 starts with IOPL 3 (port I/O, cli and sti allowed) and interrupts off. */
#define USER_RFLAGS 0x3002

/* 2 MiB page: present, writable, user, large. The fourth GiB (MMIO) is also uncached. */
#define PDE_USER_LARGE 0x87
#define PDE_USER_LARGE_UC 0x9f
#define PTE_TABLE_USER 0x07

	/*
	 * XEN_ELFNOTE_PHYS32_ENTRY (18). The value is 8 bytes (entry in the low 32 bits): QEMU 7.2
	 * reads a size_t from an ELF64 note, and Xen-style readers accept 4 or 8 bytes.
	 */
	.section .note.pvh, "a", @note
	.balign 4
	.long 4
	.long 8
	.long 18
	.asciz "Xen"
	.balign 4
	.quad pvh_entry

	.section .text.boot, "ax", @progbits
	.code32
	.globl pvh_entry
pvh_entry:
	cli
	movl %ebx, boot_start_info
	lgdt gdt_pointer
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %esi, %esi
	jmp enter_long_mode

	/* ESI = CPU number. Uses no stack, so the AP path can share it. */
enter_long_mode:
	movl $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	andl $~(CR0_CD | CR0_NW), %eax
	orl $(CR0_PG | CR0_PE), %eax
	movl %eax, %cr0
	ljmp $SEL_KCODE64, $long_entry

	/* AP: reached from the trampoline's far jump with a flat 32-bit code segment. */
ap_entry32:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl boot_ap_cpu, %esi
	jmp enter_long_mode

	.code64
long_entry:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	movl %esi, %r12d

	/* Ring-0 stack of this CPU: kernel_stacks + (cpu + 1) * KSTACK_SIZE, 16-byte aligned. */
	leaq 1(%r12), %rax
	shlq $14, %rax
	leaq kernel_stacks(%rax), %rsp
	movl %r12d, %edi
	call kernel_cpu_init

	movl %r12d, %eax
	shll $4, %eax
	addl $SEL_TSS0, %eax
	ltr %ax
	lidt idt_pointer(%rip)

	leaq 1(%r12), %rax
	shlq $16, %rax
	leaq user_stacks(%rax), %rax
	pushq $(SEL_UDATA | 3)
	pushq %rax
	pushq $USER_RFLAGS
	pushq $(SEL_UCODE64 | 3)
	leaq user_entry(%rip), %rax
	pushq %rax
	iretq

	/* Ring 3, with R12 = CPU number preserved across iretq. */
user_entry:
	movl %r12d, %edi
	call guest_user_entry
1:	pause
	jmp 1b

	/*
	 * Real-mode entry of an application processor. It is copied to a 4 KiB-aligned page below
	 * 1 MiB and started with a SIPI there, so it uses only CS-relative offsets until the far
	 * jump.
	 */
	.code16
	.globl ap_trampoline_start, ap_trampoline_end
	.balign 16
ap_trampoline_start:
	cli
	lgdtl %cs:(ap_gdt_pointer - ap_trampoline_start)
	movl %cr0, %eax
	orl $CR0_PE, %eax
	movl %eax, %cr0
	ljmpl $SEL_KCODE32, $ap_entry32
	.balign 4
ap_gdt_pointer:
	.word gdt_end - gdt - 1
	.long gdt
ap_trampoline_end:

	/* Exception stubs: each pushes a zero in place of an absent error code, then the vector. */
	.code64
	.macro EXCEPTION_STUB vector, has_error
	.balign 16
exception_stub_\vector:
	.if \has_error == 0
	pushq $0
	.endif
	pushq $\vector
	jmp exception_common
	.endm

	EXCEPTION_STUB 0, 0
	EXCEPTION_STUB 1, 0
	EXCEPTION_STUB 2, 0
	EXCEPTION_STUB 3, 0
	EXCEPTION_STUB 4, 0
	EXCEPTION_STUB 5, 0
	EXCEPTION_STUB 6, 0
	EXCEPTION_STUB 7, 0
	EXCEPTION_STUB 8, 1
	EXCEPTION_STUB 9, 0
	EXCEPTION_STUB 10, 1
	EXCEPTION_STUB 11, 1
	EXCEPTION_STUB 12, 1
	EXCEPTION_STUB 13, 1
	EXCEPTION_STUB 14, 1
	EXCEPTION_STUB 15, 0
	EXCEPTION_STUB 16, 0
	EXCEPTION_STUB 17, 1
	EXCEPTION_STUB 18, 0
	EXCEPTION_STUB 19, 0
	EXCEPTION_STUB 20, 0
	EXCEPTION_STUB 21, 1
	EXCEPTION_STUB 22, 0
	EXCEPTION_STUB 23, 0
	EXCEPTION_STUB 24, 0
	EXCEPTION_STUB 25, 0
	EXCEPTION_STUB 26, 0
	EXCEPTION_STUB 27, 0
	EXCEPTION_STUB 28, 0
	EXCEPTION_STUB 29, 1
	EXCEPTION_STUB 30, 1
	EXCEPTION_STUB 31, 0

	/*
	 * General protection fault from ring 3. Some KVM implementations run guest ring 3 as
	 * host user mode, where EFLAGS.IOPL is not honoured, so ring 3's port I/O and cli/sti
	 * fault. kernel_emulate_gp() performs such an instruction and skips it; any other #GP
	 * is fatal. Stack on entry: error code, RIP, CS, RFLAGS, RSP, SS.
	 */
	.globl gp_stub
	.balign 16
gp_stub:
	pushq %rax
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	movq %rsp, %rdi
	call kernel_emulate_gp
	testl %eax, %eax
	jz 2f
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rax
	addq $8, %rsp
	iretq
2:	addq $72, %rsp
	pushq $13
	jmp exception_common

	/* Stack: vector, error code, then the CPU's RIP, CS, RFLAGS, RSP, SS. Never returns. */
exception_common:
	movq %rsp, %rdi
	andq $~15, %rsp
	call kernel_exception
1:	cli
	hlt
	jmp 1b

	/*
	 * Interrupt handlers: count, then signal end of interrupt to the local APIC. The spurious
	 * vector takes no EOI.
	 */
	.macro IRQ_STUB name, counter
	.balign 16
\name:
	lock incq \counter(%rip)
	pushq %rax
	movl $(0xfee00000 + 0xb0), %eax
	movl $0, (%rax)
	popq %rax
	iretq
	.endm

	IRQ_STUB irq_stub_lapic_timer, irq_count_lapic_timer
	IRQ_STUB irq_stub_ioapic, irq_count_ioapic

	.balign 16
irq_stub_spurious:
	iretq

	.section .rodata
	.balign 8
	.globl exception_stub_table, irq_stub_lapic_timer, irq_stub_ioapic, irq_stub_spurious
exception_stub_table:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	.quad exception_stub_\v
	.endr
	.irp v, 16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad exception_stub_\v
	.endr

	.data
	.balign 8
	.globl boot_start_info, boot_ap_cpu, gdt, gdt_tss
	/* The pointer is read as 6 bytes in 32-bit mode and 10 bytes in long mode. */
gdt_pointer:
	.word gdt_end - gdt - 1
	.quad gdt
	.globl idt_pointer
idt_pointer:
	.word 256 * 16 - 1
	.quad idt
boot_start_info:
	.long 0
boot_ap_cpu:
	.long 1

	.balign 16
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff	/* SEL_KCODE32 */
	.quad 0x00af9a000000ffff	/* SEL_KCODE64 */
	.quad 0x00cf92000000ffff	/* SEL_KDATA */
	.quad 0x00cff2000000ffff	/* SEL_UDATA, DPL 3 */
	.quad 0x00affa000000ffff	/* SEL_UCODE64, DPL 3 */
gdt_tss:
	/* One 16-byte TSS descriptor per CPU, filled by kernel_cpu_init. */
	.fill 2 * 2, 8, 0
gdt_end:

	/* Identity map of the low 4 GiB with 2 MiB user pages, built at assembly time. */
	.section .data.pagetables, "aw", @progbits
	.balign 4096
	.globl pml4, pdpt
pml4:
	.quad pdpt + PTE_TABLE_USER
	.fill 511, 8, 0
pdpt:
	.quad pd_low + PTE_TABLE_USER
	.quad pd_low + 0x1000 + PTE_TABLE_USER
	.quad pd_low + 0x2000 + PTE_TABLE_USER
	.quad pd_low + 0x3000 + PTE_TABLE_USER
	.fill 508, 8, 0
pd_low:
	.set page, 0
	.rept 3 * 512
	.quad page + PDE_USER_LARGE
	.set page, page + 0x200000
	.endr
	.rept 512
	.quad page + PDE_USER_LARGE_UC
	.set page, page + 0x200000
	.endr

	.section .bss.stacks, "aw", @nobits
	.balign 4096
	.globl idt, kernel_stacks, user_stacks
idt:
	.skip 256 * 16
kernel_stacks:
	.skip 2 * KSTACK_SIZE
user_stacks:
	.skip 2 * USTACK_SIZE

	.section .note.GNU-stack, "", @progbits
