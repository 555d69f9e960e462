//! Postprocessing of each family on the reference's raw outputs (`parity/*.npz`) gives exactly
//! the reference's final detections (`parity/*.json`): same boxes, scores and categories, to the
//! last bit, in the same order.

mod common;

use common::{PARITY_IMAGES, assert_same_detections, parity};
use detbench_models::families::common::Pipeline;
use detbench_models::families::fastestdet::{FastestDet, FastestDetConfig, FastestDetMeta};
use detbench_models::families::nanodet::{NanoDet, NanoDetConfig, NanoDetMeta};
use detbench_models::families::yolox::{Yolox, YoloxConfig, YoloxMeta};

#[test]
fn yolox_postprocessing_reproduces_the_reference_detections() {
    let pipeline = Yolox::new(YoloxConfig::default());
    for stem in PARITY_IMAGES {
        let mut p = parity("yolox_nano_416", stem);
        let (w, h) = p.size();
        let (ratio, _, _) = pipeline.letterbox_geometry(w, h);
        assert_eq!(ratio, p.json["meta"]["r"].as_f64().unwrap(), "{stem}: r");
        let meta = YoloxMeta {
            ratio,
            width: w,
            height: h,
        };
        let outputs = p.outputs(&["output"]);
        let got = pipeline.postprocess(&outputs, &meta, p.image_id()).unwrap();
        assert_same_detections(&got, &p.detections(), &format!("yolox {stem}"));
    }
}

#[test]
fn nanodet_postprocessing_reproduces_the_reference_detections() {
    for size in [320, 416] {
        let pipeline = NanoDet::new(NanoDetConfig {
            input_size: size,
            ..Default::default()
        });
        for stem in PARITY_IMAGES {
            let mut p = parity(&format!("nanodet_m_{size}"), stem);
            let (w, h) = p.size();
            let warp = pipeline.warp_matrix(w, h);
            let want: Vec<Vec<f64>> = serde_json::from_value(p.json["meta"]["M"].clone()).unwrap();
            for r in 0..3 {
                assert_eq!(
                    warp[r].to_vec(),
                    want[r],
                    "nanodet {size} {stem}: M row {r}"
                );
            }
            let meta = NanoDetMeta {
                warp,
                width: w,
                height: h,
            };
            let outputs = p.outputs(&[
                "cls_pred_stride_8",
                "cls_pred_stride_16",
                "cls_pred_stride_32",
                "dis_pred_stride_8",
                "dis_pred_stride_16",
                "dis_pred_stride_32",
            ]);
            let got = pipeline.postprocess(&outputs, &meta, p.image_id()).unwrap();
            assert_same_detections(&got, &p.detections(), &format!("nanodet {size} {stem}"));
        }
    }
}

#[test]
fn fastestdet_postprocessing_reproduces_the_reference_detections() {
    let pipeline = FastestDet::new(FastestDetConfig::default());
    for stem in PARITY_IMAGES {
        let mut p = parity("fastestdet_352", stem);
        let (width, height) = p.size();
        let meta = FastestDetMeta { width, height };
        let outputs = p.outputs(&["758"]);
        let got = pipeline.postprocess(&outputs, &meta, p.image_id()).unwrap();
        assert_same_detections(&got, &p.detections(), &format!("fastestdet {stem}"));
    }
}
