fn main() {
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
