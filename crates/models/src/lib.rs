//! The model zoo (what each model is, where its file comes from, what it should score) and the
//! per-family pipelines that turn images into COCO detections exactly as the upstream projects'
//! evaluation code does.
