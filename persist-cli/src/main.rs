//! `persist`: the operator's tool for persist stores, with our users' nine schemas (see the
//! `persist_cli` library to build one with your own).

fn main() -> std::process::ExitCode {
    persist_cli::main(persist_schemas::schemas())
}
