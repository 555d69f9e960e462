//! Every NVRTC kernel of the engine compiles (to PTX for Hopper, no GPU needed), so a kernel that
//! would only fail on the GPU machine fails here.
#![cfg(feature = "cuda")]

#[test]
fn all_kernels_compile_for_hopper() {
    let ptx = detbench_native::engine::compile_kernels("compute_90").unwrap();
    for entry in [
        "dn_nms_mask",
        "dn_nms_reduce",
        "dn_roi_align_f32",
        "dn_roi_align_f16",
        "dn_paste_masks_f32",
        "dn_paste_masks_f16",
        "dn_preprocess_f32",
        "dn_preprocess_f16",
    ] {
        assert!(
            ptx.contains(&format!(".entry {entry}")),
            "no {entry} in the PTX"
        );
    }
}
