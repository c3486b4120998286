//! `cargo run -p slo --example generate -- [specs_dir] [root]`: regenerates
//! every artifact (what `todoctl slo generate` does, without the CLI's deps).
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let specs = args.get(1).map(String::as_str).unwrap_or("slo");
    let root = args.get(2).map(String::as_str).unwrap_or(".");
    match slo::generate(std::path::Path::new(specs), std::path::Path::new(root)) {
        Ok(changed) => {
            for p in &changed {
                println!("wrote {}", p.display());
            }
            println!("{} file(s) changed", changed.len());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
