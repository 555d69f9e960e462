//! A warning for a quantized model that detects nothing: when every one of the first images of
//! a run gives no result over the score threshold, the model is probably broken for this
//! engine (an int8 export whose scales the engine reads differently, an input in the wrong
//! range or colour order), and a run that goes on scores AP 0 without saying why. The watch
//! says so once, naming the threshold and the best score seen, and never stops the run.

/// Watches the first `window` images of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct BelowThresholdWatch {
    model: String,
    threshold: f32,
    window: usize,
    seen: usize,
    best: f32,
    active: bool,
}

/// Images watched by default.
pub const DEFAULT_WINDOW: usize = 8;

impl BelowThresholdWatch {
    /// A watch for `model`, active only when the model is `quantized`.
    pub fn new(model: &str, threshold: f32, quantized: bool, window: usize) -> Self {
        BelowThresholdWatch {
            model: model.to_owned(),
            threshold,
            window: window.max(1),
            seen: 0,
            best: f32::NEG_INFINITY,
            active: quantized,
        }
    }

    /// Records one image's best score (`None`: no result at all). Returns the warning once,
    /// at the image that completes the window, when no image had a result over the threshold.
    pub fn observe(&mut self, best_score: Option<f32>) -> Option<String> {
        if !self.active {
            return None;
        }
        self.seen += 1;
        match best_score {
            Some(s) if s >= self.threshold => {
                self.active = false;
                return None;
            }
            Some(s) => self.best = self.best.max(s),
            None => {}
        }
        if self.seen < self.window {
            return None;
        }
        self.active = false;
        let best = if self.best.is_finite() {
            format!("the best score seen was {:.4}", self.best)
        } else {
            "no result at all".to_owned()
        };
        Some(format!(
            "{}: quantized (int8) model gave no result over the score threshold {} on the first {} images ({best}); \
             check the input range, colour order and the engine's support for its quantized operators",
            self.model, self.threshold, self.seen
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_when_the_first_images_are_all_below_the_threshold() {
        let mut watch = BelowThresholdWatch::new("m", 0.25, true, 3);
        assert_eq!(watch.observe(None), None);
        assert_eq!(watch.observe(Some(0.1)), None);
        let warning = watch
            .observe(Some(0.2))
            .expect("a warning at the third image");
        assert!(
            warning.contains("0.25")
                && warning.contains("first 3 images")
                && warning.contains("0.2000"),
            "{warning}"
        );
        assert_eq!(watch.observe(None), None, "only once");
    }

    #[test]
    fn one_result_over_the_threshold_or_a_float_model_never_warns() {
        let mut watch = BelowThresholdWatch::new("m", 0.25, true, 3);
        watch.observe(None);
        watch.observe(Some(0.9));
        assert_eq!(watch.observe(None), None);
        assert_eq!(watch.observe(None), None);
        let mut float = BelowThresholdWatch::new("m", 0.25, false, 1);
        assert_eq!(float.observe(None), None);
    }
}
