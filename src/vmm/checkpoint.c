/*
 * Checkpoint and restore of the running VM.
 *
 * Clock policy: the guest's clocks catch up with the host's real time. A restored
 * or hibernated guest has its TSC and kvmclock advanced by the real time that passed
 * since its vCPUs stopped, so its wall clock is right and its monotonic clock jumps
 * forward (never back) by that gap, as after a long pause. Each vCPU is flagged
 * through KVM_KVMCLOCK_CTRL so the guest's soft-lockup watchdog does not report
 * the gap.
 *
 * The vCPUs stay stopped while memory and disks are written; the downtime reported
 * in the reply is that time, without the fsyncs that follow.
 */
#include "vmm/checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "machine/cpuid.h"
#include "snapshot/ckpt.h"
#include "vmm/vmstate.h"
#include "vmm/vmm.h"

#define MSR_IA32_TSC 0x10

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int add_ser_section(struct ckpt_writer *w, const char *name, struct ser_writer *s)
{
	int ret = s->err ? s->err : ckpt_writer_add_section(w, name, s->buf, s->len);

	ser_writer_free(s);
	return ret;
}

static int save_vm_sections(struct vmm *v, struct ckpt_writer *w, char *err, size_t errlen)
{
	struct vm_section vs = {
		.cfg = v->m.cfg,
		.realtime_ns = (uint64_t)clock_ns(CLOCK_REALTIME),
		.cpuid = v->m.cpuid[0],
	};
	struct kvm_vm_state ks;
	struct ser_writer s;
	int ret, khz;

	khz = kvm_vcpu_get_tsc_khz(&v->m.vcpus[0]);
	vs.tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	ser_writer_init(&s);
	vmstate_save_vm(&s, &vs);
	ret = add_ser_section(w, "vm", &s);
	if (ret < 0)
		goto fail;

	for (unsigned i = 0; i < v->m.cfg.nr_cpus; i++) {
		struct kvm_vcpu_state st;
		char name[16];

		ret = kvm_vcpu_get_state(&v->m.vcpus[i], &st);
		if (ret < 0) {
			snprintf(err, errlen, "cannot read the state of vCPU %u: %s", i,
				 strerror(-ret));
			return ret;
		}
		ser_writer_init(&s);
		vmstate_save_vcpu(&s, &st);
		kvm_vcpu_state_free(&st);
		snprintf(name, sizeof(name), "vcpu%u", i);
		ret = add_ser_section(w, name, &s);
		if (ret < 0)
			goto fail;
	}

	ret = kvm_vm_get_state(&v->m.kvm, &ks);
	if (ret < 0) {
		snprintf(err, errlen, "cannot read the irqchip and clock state: %s", strerror(-ret));
		return ret;
	}
	ser_writer_init(&s);
	vmstate_save_kvm(&s, &ks);
	ret = add_ser_section(w, "kvm", &s);
	if (ret < 0)
		goto fail;

	for (unsigned i = 0; i < v->m.nr_devices; i++) {
		struct device *d = &v->m.devices[i];
		/* Device ids are unique and never "vm", "kvm" or "vcpuN", so they name the section. */
		ser_writer_init(&s);
		d->ops->save(d->priv, &s);
		ret = add_ser_section(w, d->id, &s);
		if (ret < 0)
			goto fail;
	}
	return 0;

fail:
	snprintf(err, errlen, "cannot store the VM state: %s", strerror(-ret));
	return ret;
}

struct progress_ctx {
	const struct checkpoint_request *req;
	int64_t last_ns;
};

static void on_progress(uint64_t done, uint64_t total, void *opaque)
{
	struct progress_ctx *p = opaque;
	int64_t now = clock_ns(CLOCK_MONOTONIC);
	char line[128];

	/* A few lines a second are enough for a progress bar. */
	if (done != total && now - p->last_ns < 200000000)
		return;
	p->last_ns = now;
	snprintf(line, sizeof(line), "progress written=%llu total=%llu", (unsigned long long)done,
		 (unsigned long long)total);
	p->req->reply(p->req->reply_opaque, line);
}

/*
 * Writes every file of the checkpoint into its temporary directory and returns the
 * open writer in *wp; the caller commits it. Needs the vCPUs parked.
 */
static int write_checkpoint(struct vmm *v, const struct checkpoint_request *req,
			    struct ckpt_writer **wp, char *err, size_t errlen)
{
	struct progress_ctx progress = { .req = req };
	struct ckpt_writer *w;
	int ret;

	ret = ckpt_writer_open(&w, req->dir);
	if (ret < 0) {
		snprintf(err, errlen, "cannot create checkpoint %s: %s", req->dir, strerror(-ret));
		return ret;
	}
	ret = save_vm_sections(v, w, err, errlen);
	if (ret < 0)
		goto abort;

	ret = ckpt_writer_add_memory(w, &v->m.mem, req->progress ? on_progress : NULL, &progress);
	if (ret < 0) {
		snprintf(err, errlen, "cannot write the memory image: %s", strerror(-ret));
		goto abort;
	}
	for (unsigned i = 0; i < v->m.cfg.nr_disks; i++) {
		enum ckpt_copy_method method;
		char name[16];

		snprintf(name, sizeof(name), "disk%u", i);
		ret = ckpt_writer_add_disk(w, name, v->m.cfg.disks[i].path, &method);
		if (ret < 0) {
			snprintf(err, errlen, "cannot capture disk %s: %s", v->m.cfg.disks[i].path,
				 strerror(-ret));
			goto abort;
		}
		log_info("checkpoint", "disk %s captured by %s", v->m.cfg.disks[i].path,
			 ckpt_copy_method_name(method));
	}
	*wp = w;
	return 0;

abort:
	ckpt_writer_abort(w);
	return ret;
}

static void mark_vcpus_stopped(struct vmm *v)
{
	for (unsigned i = 0; i < v->m.cfg.nr_cpus; i++)
		kvm_vcpu_kvmclock_ctrl(&v->m.vcpus[i]);
}

/*
 * The vCPUs stay parked only while the state, memory and disks are written. The
 * fsyncs, the rename into place and the removal of a replaced checkpoint touch only
 * files the guest can no longer change, so with then=run the guest resumes before
 * them; the reply still comes only once the checkpoint is durable.
 */
void vmm_checkpoint(struct vmm *v, const struct checkpoint_request *req)
{
	bool was_paused = v->state == VMM_PAUSED;
	bool resume = !was_paused;
	bool replaced = false;
	int64_t start = clock_ns(CLOCK_MONOTONIC), stopped, downtime_ns;
	char err[1024] = "", line[CONTROL_LINE_MAX];
	struct ckpt_writer *w = NULL;
	int ret;

	if (!was_paused)
		vmm_park_vcpus(v);
	/*
	 * vmm_park_vcpus returns early when the guest powers off or resets meanwhile,
	 * before every vCPU is parked; their state cannot be read safely then.
	 */
	if (vmm_is_stopping(v)) {
		log_warn("checkpoint", "%s not written: the VM is exiting", req->dir);
		req->reply(req->reply_opaque, "error checkpoint not taken: the VM is exiting");
		return;
	}
	stopped = clock_ns(CLOCK_MONOTONIC);

	ret = write_checkpoint(v, req, &w, err, sizeof(err));
	downtime_ns = clock_ns(CLOCK_MONOTONIC) - stopped;
	if (ret == 0 && req->then == CHECKPOINT_THEN_RUN && resume) {
		mark_vcpus_stopped(v);
		vmm_unpark_vcpus(v);
		resume = false;
	}
	if (ret == 0) {
		if (req->progress)
			req->reply(req->reply_opaque, "progress sync");
		ret = ckpt_writer_commit(w, &replaced);
		if (ret < 0)
			snprintf(err, sizeof(err), "cannot commit checkpoint %s: %s", req->dir,
				 strerror(-ret));
	}
	if (ret < 0) {
		/* The VM goes on as before, whatever was requested after the checkpoint. */
		log_error("checkpoint", "%s", err);
		if (resume) {
			mark_vcpus_stopped(v);
			vmm_unpark_vcpus(v);
		}
		snprintf(line, sizeof(line), "error %s", err);
		req->reply(req->reply_opaque, line);
		return;
	}

	if (req->then != CHECKPOINT_THEN_RUN)
		downtime_ns = clock_ns(CLOCK_MONOTONIC) - stopped;
	snprintf(line, sizeof(line), "ok path=%s bytes=%llu downtime_us=%lld%s", req->dir,
		 (unsigned long long)machine_mem_bytes(&v->m), (long long)(downtime_ns / 1000),
		 replaced ? " replaced=1" : "");
	log_info("checkpoint", "wrote %s in %lld ms (vCPUs stopped for %lld ms)", req->dir,
		 (long long)((clock_ns(CLOCK_MONOTONIC) - start) / 1000000),
		 (long long)(downtime_ns / 1000000));

	if (req->then == CHECKPOINT_THEN_POWEROFF)
		vmm_request_exit(v, VMM_EXIT_POWEROFF);
	else if (req->then == CHECKPOINT_THEN_EXIT)
		vmm_request_exit(v, VMM_EXIT_HIBERNATED);
	req->reply(req->reply_opaque, line);
}

/* Advances every vCPU's TSC by the real time since the checkpoint (see the clock policy). */
static void advance_tsc(struct kvm_vcpu_state *st, uint64_t gap_ns, uint32_t tsc_khz)
{
	uint64_t ticks = gap_ns / 1000 * tsc_khz / 1000;

	for (uint32_t i = 0; i < st->msrs->nmsrs; i++) {
		if (st->msrs->entries[i].index == MSR_IA32_TSC)
			st->msrs->entries[i].data += ticks;
	}
}

struct restore_ctx {
	struct ckpt_reader *r;
	struct vm_section vs;
	char staged[MACHINE_MAX_DISKS][MACHINE_PATH_MAX + 32];
	char original[MACHINE_MAX_DISKS][MACHINE_PATH_MAX];
	unsigned nr_staged;
};

static const void *need_section(struct restore_ctx *ctx, const char *name, size_t *len,
				const char *dir, char *err, size_t errlen)
{
	const void *p = ckpt_reader_section(ctx->r, name, len);

	if (!p)
		snprintf(err, errlen, "checkpoint %s: section %s is missing", dir, name);
	return p;
}

/*
 * Copies each saved disk to "PATH.cryo-restore" beside its original. The machine
 * runs on those copies; they are renamed over the originals only once every other
 * part of the restore has succeeded, so a failed restore leaves the disks as they were.
 */
static int stage_disks(struct restore_ctx *ctx, const char *dir, char *err, size_t errlen)
{
	struct vm_config *cfg = &ctx->vs.cfg;

	if (ckpt_reader_disk_count(ctx->r) != cfg->nr_disks) {
		snprintf(err, errlen, "checkpoint %s: the VM has %u disks but %u were saved", dir,
			 cfg->nr_disks, ckpt_reader_disk_count(ctx->r));
		return -EBADMSG;
	}
	for (unsigned i = 0; i < cfg->nr_disks; i++) {
		char name[16];
		int ret;

		snprintf(name, sizeof(name), "disk%u", i);
		size_t len = strlen(cfg->disks[i].path);

		if (len + sizeof(".cryo-restore") > sizeof(cfg->disks[i].path)) {
			snprintf(err, errlen, "disk path too long: %s", cfg->disks[i].path);
			return -ENAMETOOLONG;
		}
		/* Plain copies: the source lives inside ctx too, which snprintf may not overlap. */
		memcpy(ctx->original[i], cfg->disks[i].path, len + 1);
		memcpy(ctx->staged[i], cfg->disks[i].path, len);
		memcpy(ctx->staged[i] + len, ".cryo-restore", sizeof(".cryo-restore"));
		ret = ckpt_reader_restore_disk(ctx->r, name, ctx->staged[i], NULL, err, errlen);
		if (ret < 0)
			return ret;
		ctx->nr_staged = i + 1;
		memcpy(cfg->disks[i].path, ctx->staged[i], strlen(ctx->staged[i]) + 1);
	}
	return 0;
}

static void unstage_disks(struct restore_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->nr_staged; i++)
		unlink(ctx->staged[i]);
	ctx->nr_staged = 0;
}

static int commit_disks(struct restore_ctx *ctx, struct machine *m, char *err, size_t errlen)
{
	for (unsigned i = 0; i < ctx->nr_staged; i++) {
		if (rename(ctx->staged[i], ctx->original[i]) < 0) {
			snprintf(err, errlen, "cannot put the restored disk in place at %s: %s",
				 ctx->original[i], strerror(errno));
			return -errno;
		}
		snprintf(m->cfg.disks[i].path, sizeof(m->cfg.disks[i].path), "%s", ctx->original[i]);
	}
	ctx->nr_staged = 0;
	return 0;
}

static int load_vcpus(struct restore_ctx *ctx, struct machine *m, const char *dir, char *err,
		      size_t errlen)
{
	int64_t gap = clock_ns(CLOCK_REALTIME) - (int64_t)ctx->vs.realtime_ns;

	if (gap < 0)
		gap = 0;
	for (unsigned i = 0; i < m->cfg.nr_cpus; i++) {
		struct kvm_vcpu_state st;
		struct ser_reader r;
		char name[16], why[256];
		const void *p;
		size_t len;
		int ret;

		snprintf(name, sizeof(name), "vcpu%u", i);
		p = need_section(ctx, name, &len, dir, err, errlen);
		if (!p)
			return -EBADMSG;
		ser_reader_init(&r, p, len);
		ret = vmstate_load_vcpu(&r, &st, m->kvm.xsave_size, m->kvm.msr_list->nmsrs, why,
					sizeof(why));
		if (ret < 0) {
			snprintf(err, errlen, "checkpoint %s: %s (%s)", dir, why, name);
			return ret;
		}
		advance_tsc(&st, (uint64_t)gap, ctx->vs.tsc_khz);
		ret = kvm_vcpu_set_state(&m->vcpus[i], &st);
		kvm_vcpu_state_free(&st);
		if (ret < 0) {
			snprintf(err, errlen, "checkpoint %s: KVM rejected the state of %s: %s", dir,
				 name, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static int load_vm_wide(struct restore_ctx *ctx, struct machine *m, const char *dir, char *err,
			size_t errlen)
{
	int64_t gap = clock_ns(CLOCK_REALTIME) - (int64_t)ctx->vs.realtime_ns;
	struct kvm_vm_state ks;
	struct ser_reader r;
	char why[256];
	const void *p;
	size_t len;
	int ret;

	p = need_section(ctx, "kvm", &len, dir, err, errlen);
	if (!p)
		return -EBADMSG;
	ser_reader_init(&r, p, len);
	ret = vmstate_load_kvm(&r, &ks, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "checkpoint %s: %s", dir, why);
		return ret;
	}
	ks.clock.clock += gap > 0 ? (uint64_t)gap : 0;
	ret = kvm_vm_set_state(&m->kvm, &ks);
	if (ret < 0) {
		snprintf(err, errlen, "checkpoint %s: KVM rejected the irqchip or clock state: %s",
			 dir, strerror(-ret));
		return ret;
	}

	for (unsigned i = 0; i < m->nr_devices; i++) {
		struct device *d = &m->devices[i];
		const char *name = d->id;

		p = need_section(ctx, name, &len, dir, err, errlen);
		if (!p)
			return -EBADMSG;
		ser_reader_init(&r, p, len);
		ret = d->ops->load(d->priv, &r);
		if (ret < 0) {
			snprintf(err, errlen, "checkpoint %s: section %s: invalid device state", dir,
				 name);
			return ret;
		}
	}
	return 0;
}

static int check_definition(struct restore_ctx *ctx, const char *dir, char *err, size_t errlen)
{
	char why[512];
	int ret;

	ret = machine_check_config(&ctx->vs.cfg, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "checkpoint %s: the saved VM cannot run on this host: %s", dir,
			 why);
		return ret;
	}
	if (ckpt_reader_memory_size(ctx->r) != ctx->vs.cfg.mem_size) {
		snprintf(err, errlen,
			 "checkpoint %s: file memory: %llu bytes but the VM has %llu bytes of RAM",
			 dir, (unsigned long long)ckpt_reader_memory_size(ctx->r),
			 (unsigned long long)ctx->vs.cfg.mem_size);
		return -EBADMSG;
	}
	return 0;
}

/*
 * Check the saved CPU model against the CPUID that KVM supports for the restored machine's own VM.
 * It runs before any state is loaded or a staged disk is committed, so a failure only unstages
 * the disks. A separate probe VM for this check cost about 30 ms of each restore (strace under
 * kvm_pvm on Linux 6.18), most of it in closing that VM.
 */
static int check_cpu_model(struct restore_ctx *ctx, const struct kvm_vm *vm, const char *dir,
			   char *err, size_t errlen)
{
	char why[512];
	int ret;

	ret = cpuid_check_compatible(ctx->vs.cpuid, vm->supported_cpuid, why, sizeof(why));
	if (ret < 0)
		snprintf(err, errlen, "checkpoint %s: %s", dir, why);
	return ret;
}

static int open_and_check(struct restore_ctx *ctx, const struct vmm_options *o, char *err,
			  size_t errlen)
{
	struct ser_reader r;
	const void *p;
	size_t len;
	char why[512];
	int ret;

	ret = ckpt_reader_open(&ctx->r, o->restore, err, errlen);
	if (ret < 0)
		return ret;
	if (o->verify_memory) {
		ret = ckpt_reader_verify_memory(ctx->r, err, errlen);
		if (ret < 0)
			return ret;
	}
	p = need_section(ctx, "vm", &len, o->restore, err, errlen);
	if (!p)
		return -EBADMSG;
	ser_reader_init(&r, p, len);
	ret = vmstate_load_vm(&r, &ctx->vs, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "checkpoint %s: %s", o->restore, why);
		return ret;
	}
	return check_definition(ctx, o->restore, err, errlen);
}

int vmm_restore(struct vmm *v, const struct vmm_options *o, const struct machine_events *ev,
		char *err, size_t errlen)
{
	struct restore_ctx *ctx = calloc(1, sizeof(*ctx));
	bool machine_up = false;
	int ret;

	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = open_and_check(ctx, o, err, errlen);
	if (ret < 0)
		goto out;
	ret = stage_disks(ctx, o->restore, err, errlen);
	if (ret < 0)
		goto out;

	ret = machine_create(&v->m, &ctx->vs.cfg, ev, err, errlen);
	if (ret < 0)
		goto out;
	machine_up = true;
	ret = check_cpu_model(ctx, &v->m.kvm, o->restore, err, errlen);
	if (ret < 0)
		goto out;
	ret = ckpt_reader_map_memory(ctx->r, &v->m.mem, err, errlen);
	if (ret < 0)
		goto out;
	ret = load_vcpus(ctx, &v->m, o->restore, err, errlen);
	if (ret < 0)
		goto out;
	ret = load_vm_wide(ctx, &v->m, o->restore, err, errlen);
	if (ret < 0)
		goto out;
	ret = commit_disks(ctx, &v->m, err, errlen);
	if (ret < 0)
		goto out;
	mark_vcpus_stopped(v);

out:
	if (ret < 0) {
		unstage_disks(ctx);
		if (machine_up)
			machine_destroy(&v->m);
	}
	free(ctx->vs.cpuid);
	ckpt_reader_close(ctx->r);
	free(ctx);
	return ret;
}
