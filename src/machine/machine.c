/*
 * Assembling the machine. The order of the device table is the order of creation,
 * of checkpoint sections and of restore, so it must stay fixed for a given
 * checkpoint format version.
 */
#include "machine/machine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "devices/acpi_pm.h"
#include "devices/i8042.h"
#include "devices/pci.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_rng.h"
#include "machine/acpi.h"
#include "machine/boot.h"
#include "machine/cpuid.h"
#include "machine/layout.h"

#define MSR_IA32_TSC 0x10

static int errf(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int errf(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

int machine_check_config(const struct vm_config *cfg, char *err, size_t errlen)
{
	uint64_t host_mem = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);

	if (cfg->nr_cpus < 1 || cfg->nr_cpus > MACHINE_MAX_CPUS)
		return errf(err, errlen, -EINVAL, "invalid vCPU count %u: must be 1 to %u",
			    cfg->nr_cpus, MACHINE_MAX_CPUS);
	if (cfg->mem_size < MACHINE_MIN_MEMORY)
		return errf(err, errlen, -EINVAL, "invalid memory size %llu MiB: at least %llu MiB",
			    (unsigned long long)(cfg->mem_size >> 20),
			    (unsigned long long)(MACHINE_MIN_MEMORY >> 20));
	if (cfg->mem_size > host_mem)
		return errf(err, errlen, -EINVAL,
			    "invalid memory size %llu MiB: the host has only %llu MiB",
			    (unsigned long long)(cfg->mem_size >> 20),
			    (unsigned long long)(host_mem >> 20));
	if (cfg->mem_size % (2 * MiB))
		return errf(err, errlen, -EINVAL, "invalid memory size: must be a multiple of 2 MiB");
	for (unsigned i = 0; i < cfg->nr_disks; i++) {
		for (unsigned j = 0; j < i; j++) {
			if (strcmp(cfg->disks[i].path, cfg->disks[j].path) == 0)
				return errf(err, errlen, -EINVAL, "disk %s is given twice",
					    cfg->disks[i].path);
		}
	}
	return 0;
}

static int kvm_irq_set_line(void *opaque, uint32_t gsi, int level)
{
	return kvm_vm_irq_line(opaque, gsi, level);
}

static int kvm_irq_send_msi(void *opaque, uint64_t addr, uint32_t data)
{
	return kvm_vm_signal_msi(opaque, addr, data);
}

static const struct irq_sink_ops kvm_irq_ops = {
	.set_line = kvm_irq_set_line,
	.send_msi = kvm_irq_send_msi,
};

static int setup_memory(struct machine *m, char *err, size_t errlen)
{
	uint64_t total = m->cfg.mem_size;
	uint64_t low = total < LAYOUT_LOW_RAM_MAX ? total : LAYOUT_LOW_RAM_MAX;
	uint8_t *host;
	int ret;

	host = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		    -1, 0);
	if (host == MAP_FAILED)
		return errf(err, errlen, -errno, "cannot map %llu MiB of guest memory: %s",
			    (unsigned long long)(total >> 20), strerror(errno));

	m->mem.regions[0] = (struct guest_mem_region){ .gpa = 0, .size = low, .host = host };
	m->mem.nr_regions = 1;
	if (total > low) {
		m->mem.regions[1] = (struct guest_mem_region){
			.gpa = LAYOUT_HIGH_RAM_BASE, .size = total - low, .host = host + low,
		};
		m->mem.nr_regions = 2;
	}
	for (unsigned i = 0; i < m->mem.nr_regions; i++) {
		struct guest_mem_region *r = &m->mem.regions[i];

		ret = kvm_vm_set_memory(&m->kvm, i, r->gpa, r->size, r->host, 0);
		if (ret < 0)
			return errf(err, errlen, ret, "KVM refused the guest memory slot %u: %s", i,
				    strerror(-ret));
	}
	return 0;
}

uint64_t machine_mem_bytes(const struct machine *m)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < m->mem.nr_regions; i++)
		total += m->mem.regions[i].size;
	return total;
}

static void test_result_access(void *dev, uint64_t offset, uint8_t *data, uint32_t len,
			       bool is_write)
{
	struct machine *m = dev;
	uint32_t value = 0;

	if (!is_write || offset != 0)
		return;
	memcpy(&value, data, len < 4 ? len : 4);
	if (m->events.test_result)
		m->events.test_result(m->events.opaque, value);
}

static void on_serial_output(void *opaque, const uint8_t *buf, size_t len)
{
	struct machine *m = opaque;

	if (m->events.console_output)
		m->events.console_output(m->events.opaque, buf, len);
}

static void on_kbd_reset(void *opaque)
{
	struct machine *m = opaque;

	if (m->events.reset)
		m->events.reset(m->events.opaque);
}

static void on_sleep(void *opaque, unsigned slp_typ)
{
	struct machine *m = opaque;

	if (slp_typ == ACPI_SLP_TYP_S5 && m->events.poweroff)
		m->events.poweroff(m->events.opaque);
}

static struct device *next_device(struct machine *m)
{
	struct device *d = &m->devices[m->nr_devices];

	memset(d, 0, sizeof(*d));
	return d;
}

static int add_device_id(struct machine *m, struct device *d, const char *id)
{
	snprintf(d->id, sizeof(d->id), "%s", id);
	m->nr_devices++;
	return 0;
}

static int create_devices(struct machine *m, struct device_env *env, char *err, size_t errlen)
{
	struct device *d;
	int ret;

	d = next_device(m);
	m->serial = serial_create(env, PORT_COM1, IRQ_COM1, on_serial_output, m, d);
	if (!m->serial)
		return errf(err, errlen, -ENOMEM, "cannot create the serial port");
	add_device_id(m, d, "serial0");

	d = next_device(m);
	if (!i8042_create(env, on_kbd_reset, m, d))
		return errf(err, errlen, -ENOMEM, "cannot create the i8042 controller");
	add_device_id(m, d, "i8042");

	d = next_device(m);
	m->pm = acpi_pm_create(env, PORT_ACPI_PM1_EVT, PORT_ACPI_PM1_CNT, PORT_ACPI_PM_TMR,
			       IRQ_ACPI_SCI, on_sleep, m, d);
	if (!m->pm)
		return errf(err, errlen, -ENOMEM, "cannot create the ACPI PM block");
	add_device_id(m, d, "acpi-pm");

	d = next_device(m);
	if (!rtc_create(env, d))
		return errf(err, errlen, -ENOMEM, "cannot create the CMOS RTC");
	add_device_id(m, d, "rtc");

	m->pci = pci_bus_create(env, LAYOUT_PCI_MMIO_BASE, LAYOUT_PCI_MMIO_SIZE);
	if (!m->pci)
		return errf(err, errlen, -ENOMEM, "cannot create the PCI host bridge");
	env->pci = m->pci;
	d = next_device(m);
	pci_bus_get_device(m->pci, d);
	add_device_id(m, d, "pci");

	for (unsigned i = 0; i < m->cfg.nr_disks; i++) {
		char id[32];

		d = next_device(m);
		ret = virtio_blk_create(env, m->cfg.disks[i].path, m->cfg.disks[i].readonly, d);
		if (ret < 0)
			return errf(err, errlen, ret, "cannot open disk %s: %s", m->cfg.disks[i].path,
				    strerror(-ret));
		snprintf(id, sizeof(id), "virtio-blk%u", i);
		add_device_id(m, d, id);
	}

	d = next_device(m);
	ret = virtio_rng_create(env, d);
	if (ret < 0)
		return errf(err, errlen, ret, "cannot create virtio-rng: %s", strerror(-ret));
	add_device_id(m, d, "virtio-rng");

	return bus_register(&m->pio, PORT_TEST_RESULT, 4, test_result_access, m, "test-result");
}

int machine_create(struct machine *m, const struct vm_config *cfg,
		   const struct machine_events *events, char *err, size_t errlen)
{
	struct device_env env;
	int ret;

	memset(m, 0, sizeof(*m));
	m->cfg = *cfg;
	m->events = *events;
	m->kvm.vm_fd = m->kvm.sys_fd = -1;
	bus_init(&m->pio);
	bus_init(&m->mmio);

	ret = machine_check_config(cfg, err, errlen);
	if (ret < 0)
		return ret;
	ret = kvm_vm_create(&m->kvm);
	if (ret < 0)
		return errf(err, errlen, ret, "cannot create a KVM VM through /dev/kvm: %s",
			    strerror(-ret));
	ret = setup_memory(m, err, errlen);
	if (ret < 0)
		goto fail;

	for (unsigned i = 0; i < cfg->nr_cpus; i++) {
		ret = kvm_vcpu_create(&m->kvm, i, &m->vcpus[i]);
		if (ret < 0) {
			errf(err, errlen, ret, "cannot create vCPU %u: %s", i, strerror(-ret));
			goto fail;
		}
		m->cpuid[i] = cpuid_for_vcpu(m->kvm.supported_cpuid, i, cfg->nr_cpus,
					     kvm_vm_check_extension(&m->kvm, KVM_CAP_TSC_DEADLINE_TIMER) > 0);
		if (!m->cpuid[i]) {
			ret = errf(err, errlen, -ENOMEM, "out of memory");
			goto fail;
		}
		ret = kvm_vcpu_set_cpuid(&m->vcpus[i], m->cpuid[i]);
		if (ret < 0) {
			errf(err, errlen, ret, "KVM refused the CPUID of vCPU %u: %s", i, strerror(-ret));
			goto fail;
		}
	}

	env = (struct device_env){
		.pio = &m->pio,
		.mmio = &m->mmio,
		.mem = &m->mem,
		.irq = { .ops = &kvm_irq_ops, .opaque = &m->kvm },
	};
	ret = create_devices(m, &env, err, errlen);
	if (ret < 0)
		goto fail;
	return 0;

fail:
	machine_destroy(m);
	return ret;
}

static int setup_lapic_lint(struct kvm_vcpu *vcpu)
{
	struct kvm_lapic_state lapic;
	uint32_t *lvt0 = (uint32_t *)&lapic.regs[0x350];
	uint32_t *lvt1 = (uint32_t *)&lapic.regs[0x360];

	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	/* LINT0 receives the 8259 PIC's output (ExtINT), LINT1 is the NMI line, as on a PC. */
	*lvt0 = (*lvt0 & ~0x700u & ~(1u << 16)) | 0x700;
	*lvt1 = (*lvt1 & ~0x700u & ~(1u << 16)) | 0x400;
	return ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0 ? -errno : 0;
}

/* INTx swizzle of the PCI model: INTA# of even slots is GSI 10, of odd slots GSI 11. */
static uint32_t pci_intx_gsi(unsigned slot, unsigned pin)
{
	return (slot + pin) % 2 ? 11 : 10;
}

int machine_boot(struct machine *m, char *err, size_t errlen)
{
	struct acpi_config acpi = {
		.nr_cpus = m->cfg.nr_cpus,
		.ioapic_addr = (uint32_t)LAYOUT_IOAPIC_BASE,
		.lapic_addr = (uint32_t)LAYOUT_LAPIC_BASE,
		.pm1a_evt_port = PORT_ACPI_PM1_EVT,
		.pm1a_cnt_port = PORT_ACPI_PM1_CNT,
		.pm_tmr_port = PORT_ACPI_PM_TMR,
		.sci_irq = IRQ_ACPI_SCI,
		.pci_mmio_base = LAYOUT_PCI_MMIO_BASE,
		.pci_mmio_size = LAYOUT_PCI_MMIO_SIZE,
		.pci_intx_gsi = pci_intx_gsi,
	};
	struct boot_params_in in = {
		.kernel_path = m->cfg.kernel,
		.initrd_path = m->cfg.initrd[0] ? m->cfg.initrd : NULL,
		.cmdline = m->cfg.cmdline,
	};
	void *acpi_buf = guest_mem_ptr(&m->mem, LAYOUT_ACPI_BASE, LAYOUT_ACPI_SIZE);
	int ret;

	if (!acpi_buf ||
	    acpi_build_tables(acpi_buf, LAYOUT_ACPI_SIZE, LAYOUT_ACPI_BASE, &acpi, &m->rsdp_gpa) == 0)
		return errf(err, errlen, -ENOSPC, "the ACPI tables do not fit in their reserved area");
	in.rsdp_gpa = m->rsdp_gpa;

	for (unsigned i = 0; i < m->cfg.nr_cpus; i++) {
		ret = setup_lapic_lint(&m->vcpus[i]);
		if (ret < 0)
			return errf(err, errlen, ret, "cannot set up the local APIC of vCPU %u: %s", i,
				    strerror(-ret));
		/*
		 * The same TSC value written to every vCPU in quick succession lets KVM
		 * match their offsets; otherwise the guest sees vCPUs created moments
		 * apart as unsynchronized and marks its TSC unstable.
		 */
		ret = kvm_vcpu_set_msr(&m->vcpus[i], MSR_IA32_TSC, 0);
		if (ret < 0)
			log_warn("machine", "cannot reset the TSC of vCPU %u: %s", i, strerror(-ret));
	}
	return boot_load(&m->mem, &in, &m->vcpus[0], err, errlen);
}

void machine_power_button(struct machine *m)
{
	acpi_pm_press_power_button(m->pm);
}

size_t machine_console_input(struct machine *m, const uint8_t *buf, size_t len)
{
	return serial_input(m->serial, buf, len);
}

void machine_destroy(struct machine *m)
{
	for (unsigned i = m->nr_devices; i-- > 0;) {
		if (m->devices[i].ops && m->devices[i].ops->destroy)
			m->devices[i].ops->destroy(m->devices[i].priv);
	}
	m->nr_devices = 0;
	for (unsigned i = 0; i < MACHINE_MAX_CPUS; i++) {
		if (m->vcpus[i].run)
			kvm_vcpu_destroy(&m->vcpus[i]);
		free(m->cpuid[i]);
		m->cpuid[i] = NULL;
	}
	if (m->mem.nr_regions)
		munmap(m->mem.regions[0].host, m->cfg.mem_size);
	m->mem.nr_regions = 0;
	if (m->kvm.vm_fd >= 0 || m->kvm.sys_fd >= 0)
		kvm_vm_destroy(&m->kvm);
	bus_destroy(&m->pio);
	bus_destroy(&m->mmio);
}
