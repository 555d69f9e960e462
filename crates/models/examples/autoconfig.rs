//! Prints what detbench recognises in model files without a card (family, layout, input size,
//! class map), or the error that lists their inputs and outputs:
//! `cargo run -p detbench-models --example autoconfig -- FILE...`.

use detbench_backends::BackendConfig;
use detbench_models::autoconfig::{AutoConfig, autoconfigure, is_quantized};

fn main() {
    let mut failed = false;
    for arg in std::env::args().skip(1) {
        let path = std::path::PathBuf::from(&arg);
        let backend = match detbench_backends::open(&path, &BackendConfig::default()) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{arg}: {e}");
                failed = true;
                continue;
            }
        };
        match autoconfigure(&path, backend.inputs(), backend.outputs()) {
            Ok(AutoConfig::Ultralytics {
                config, metadata, ..
            }) => println!(
                "{arg}: ultralytics {:?} {:?}, {} classes, keypoints {:?}, input {:?}, ultralytics {:?}, quantized {}",
                config.output.task,
                config.output.layout,
                config.output.classes,
                config.output.keypoints,
                config.input_size,
                metadata.and_then(|m| m.version),
                is_quantized(&path)
            ),
            Ok(AutoConfig::Detr(config)) => println!(
                "{arg}: detr {:?}, input {:?}, {} classes",
                config.outputs,
                config.input_size,
                config.class_map.len()
            ),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
