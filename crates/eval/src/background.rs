//! Evaluation on its own thread, so that matching overlaps inference: the run hands each
//! image's detections over a channel and collects the summaries at the end.

use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::error::{EvalError, Result};
use crate::evaluator::Evaluator;
use crate::summary::EvalSummary;
use crate::types::Detection;

/// Several [`Evaluator`]s (one per IoU type, each with its ground truth) fed from one thread.
pub struct BackgroundEvaluator {
    sender: mpsc::Sender<(u64, Vec<Detection>)>,
    worker: JoinHandle<Result<Vec<EvalSummary>>>,
}

impl BackgroundEvaluator {
    /// Starts a thread that feeds every image to each of `evaluators` in turn.
    pub fn spawn(evaluators: Vec<Evaluator>) -> Self {
        let (sender, receiver) = mpsc::channel::<(u64, Vec<Detection>)>();
        let worker = std::thread::Builder::new()
            .name("detbench-eval".into())
            .spawn(move || {
                let mut evaluators = evaluators;
                // On the first error the receiver is dropped, so the run's next `add_image`
                // fails fast, and `finish` reports this error.
                for (image_id, detections) in receiver {
                    for evaluator in &mut evaluators {
                        evaluator.add_image(image_id, &detections)?;
                    }
                }
                evaluators.into_iter().map(Evaluator::finish).collect()
            })
            .expect("spawning a thread only fails when the system is out of resources");
        Self { sender, worker }
    }

    /// Queues one image's detections. Fails when evaluation has stopped on an error, which
    /// [`finish`](Self::finish) then returns.
    pub fn add_image(&self, image_id: u64, detections: Vec<Detection>) -> Result<()> {
        self.sender.send((image_id, detections)).map_err(|_| {
            EvalError::InvalidDetection(
                "evaluation stopped on an earlier error; finish() returns it".into(),
            )
        })
    }

    /// Waits for every queued image, then accumulates: one summary per evaluator, in order.
    pub fn finish(self) -> Result<Vec<EvalSummary>> {
        drop(self.sender);
        match self.worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
