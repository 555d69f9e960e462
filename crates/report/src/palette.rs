//! The one colour palette of charts and annotated images: Tableau 10, readable on white and over
//! photographs, and distinguishable in print.

use plotters::style::RGBColor;

/// Tableau 10, in its order.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(89, 161, 79),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];

/// The colour of a COCO category (cycled by category id).
pub fn category_color(category_id: u64) -> RGBColor {
    PALETTE[(category_id % PALETTE.len() as u64) as usize]
}
