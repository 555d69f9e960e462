//! Label maps: the 80 contiguous COCO detection classes to COCO category ids, and their names.

/// The standard table from the 80 contiguous training classes to the 91-id COCO category ids
/// (as in detectron2, mmdetection, YOLOX's `COCO_CLASSES` order and torchvision).
pub const COCO80_TO_91: [u64; 80] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
];

/// COCO category names in the order of [`COCO80_TO_91`].
pub const COCO80_NAMES: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// The COCO category id of contiguous class `class` (0..80), or `None` when out of range.
pub fn coco80_to_91(class: usize) -> Option<u64> {
    COCO80_TO_91.get(class).copied()
}

/// The name of a COCO category id (1..90), or `None` for ids COCO does not use.
pub fn coco_category_name(category_id: u64) -> Option<&'static str> {
    COCO80_TO_91
        .iter()
        .position(|&id| id == category_id)
        .map(|class| COCO80_NAMES[class])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_subset_ground_truth_categories() {
        let path = detbench_assets::shared::instances_subset().unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let gt: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut cats: Vec<(u64, String)> = gt["categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_u64().unwrap(),
                    c["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        cats.sort();
        let ids: Vec<u64> = cats.iter().map(|c| c.0).collect();
        assert_eq!(ids, COCO80_TO_91.to_vec());
        let names: Vec<&str> = cats.iter().map(|c| c.1.as_str()).collect();
        assert_eq!(names, COCO80_NAMES.to_vec());
    }
}
