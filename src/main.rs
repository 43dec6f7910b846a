//! The `keygate` binary: the allocator, a thread with a large stack, and
//! the command line (`keygate::cli`).

/// mimalloc: under durable writes at 64 connections it takes about half
/// the CPU glibc's malloc does (the store copies and frees a few nodes of
/// about 560 bytes per write, which miss glibc's per-thread cache).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (include/mimalloc.h);
/// libmimalloc-sys does not export the constant.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Freed pages go back to the system a second after they are freed,
    // not at once: at once, a burst of frees and allocations (10,000
    // watches answered in a row, a store loaded at start) unmapped pages
    // and faulted them back in, about 140 madvise calls per 10,000 watches
    // woken, and a store of a million keys took 1.5 s to start, not 1.1-1.2 s.
    // SAFETY: mi_option_set only stores an integer in mimalloc's option
    // table, which mimalloc reads atomically; it may be called at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    // mimalloc purges only when it allocates or frees: once a second a
    // thread has it purge what is due, so memory freed just before a quiet
    // spell is returned too (without it, a million keys loaded with PUTs
    // held twice the memory once idle; with it, 255 MiB after a restart,
    // as when purging at once).
    let _ = std::thread::Builder::new()
        .name("keygate-memory".into())
        .spawn(|| loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            // SAFETY: mi_collect may be called from any thread at any
            // time; without `force` it only purges what is due.
            unsafe { libmimalloc_sys::mi_collect(false) };
        });
    keygate::store::set_writer_setup(batch_scheduling);
    // Everything runs on a thread whose stack can drop any tree the store
    // may hold (see `keygate::store::tree::STACK_BYTES`).
    let code = std::thread::Builder::new()
        .name("keygate-main".into())
        .stack_size(keygate::store::tree::STACK_BYTES)
        .spawn(keygate::cli::main)
        .and_then(|t| t.join().map_err(|_| std::io::Error::other("panicked")))
        .unwrap_or_else(|e| {
            eprintln!("keygate: {e}");
            1
        });
    std::process::exit(code);
}

/// The store's writer thread runs under `SCHED_BATCH`: a write arriving
/// does not preempt the thread that queued it, so the writer takes the
/// writes queued meanwhile as one batch when that thread waits, or at the
/// next scheduler tick, rather than waking for each write. Its share of
/// the CPU is unchanged (nice 0). With the server on one core, durable
/// PUTs at 64 connections: 38 writes per commit instead of 27, and the
/// writer and the runtime's thread switched about 3,900 times a second
/// instead of 34,000; without it the writer, woken by every write, split
/// the batches and the pipeline lost a fifth of its throughput
/// (bench/RESULTS.md).
fn batch_scheduling() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads the sched_param it is given, which
    // lives across the call; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot run the store writer under SCHED_BATCH"
        );
    }
}
