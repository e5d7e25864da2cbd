fn main() {
    std::process::exit(moat::cli::main());
}
