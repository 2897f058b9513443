//! Prints the CRD YAML generated from the Rust types, or writes it into a folder.
//!
//! `crdgen` prints every CRD as one multi-document YAML stream; `crdgen DIR` writes one
//! file per CRD into DIR (the committed copies live in `crds/yaml/`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let out_dir = std::env::args_os().nth(1).map(PathBuf::from);
    for (file, crd) in modelgate_crds::crds() {
        let yaml = match modelgate_crds::crd_yaml(&crd) {
            Ok(y) => y,
            Err(e) => {
                eprintln!("crdgen: cannot render {file}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match &out_dir {
            Some(dir) => {
                let path = dir.join(file);
                if let Err(e) = std::fs::write(&path, yaml) {
                    eprintln!("crdgen: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            None => print!("---\n{yaml}"),
        }
    }
    ExitCode::SUCCESS
}
