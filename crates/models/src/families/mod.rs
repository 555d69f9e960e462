//! The per-family pipelines, each a `detbench_bench::Detector`.
