fn main() {
    std::process::exit(keygate::cli::main());
}
