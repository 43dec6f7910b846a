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
    // Return freed pages to the system at once instead of after a second:
    // with the default delay, loading a million keys left RSS at twice
    // glibc's; with none it stays below glibc's, at the same speed.
    // SAFETY: mi_option_set only stores an integer in mimalloc's option
    // table, which mimalloc reads atomically; it may be called at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
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
