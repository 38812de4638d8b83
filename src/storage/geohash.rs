//! Redis's geohash: a point is a 52-bit interleaving of 26-bit latitude
//! and longitude cells (latitude limited to Web Mercator's ±85.05112878°),
//! stored as a sorted set score. A search covers its shape with the cell
//! around the centre and its eight neighbours, at a step chosen from the
//! radius, and filters their members by exact distance. Every constant
//! and rounding step is Redis's (geohash.c, geohash_helper.c), so replies
//! match redis-server's to the last digit.

pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
/// 26 bits per coordinate: 52 in a score, exact in a double.
pub const STEP_MAX: u8 = 26;

const EARTH_RADIUS_M: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

fn deg_rad(d: f64) -> f64 {
    d * D_R
}

fn rad_deg(r: f64) -> f64 {
    r / D_R
}

/// A cell: `bits` holds `step` bits of each coordinate, interleaved
/// (latitude in the even positions). Step 0 marks no cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub bits: u64,
    pub step: u8,
}

impl Cell {
    const NONE: Cell = Cell { bits: 0, step: 0 };

    fn is_none(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The cell's bits as the leading bits of a 52-bit score.
    pub fn align52(&self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }

    /// The scores of the cell's points: from `min` (included) to `max`
    /// (excluded).
    pub fn score_range(&self) -> (f64, f64) {
        let next = Cell { bits: self.bits + 1, step: self.step };
        (self.align52() as f64, next.align52() as f64)
    }
}

/// The bounds of a cell.
#[derive(Clone, Copy, Debug, Default)]
pub struct Area {
    pub lon: (f64, f64),
    pub lat: (f64, f64),
}

fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

/// Encodes a point within the given ranges (Redis's and the standard
/// geohash's differ in latitude); None outside them.
pub fn encode_in(lon_range: (f64, f64), lat_range: (f64, f64), lon: f64, lat: f64, step: u8) -> Option<Cell> {
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if !(lat_range.0..=lat_range.1).contains(&lat) || !(lon_range.0..=lon_range.1).contains(&lon) {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_range.0) / (lat_range.1 - lat_range.0) * scale;
    let lon_offset = (lon - lon_range.0) / (lon_range.1 - lon_range.0) * scale;
    // C converts to uint32_t by truncation, as `as` does.
    Some(Cell { bits: spread(lat_offset as u32) | (spread(lon_offset as u32) << 1), step })
}

pub fn encode(lon: f64, lat: f64, step: u8) -> Option<Cell> {
    encode_in((LONG_MIN, LONG_MAX), (LAT_MIN, LAT_MAX), lon, lat, step)
}

/// A point's 52-bit score; None outside the supported coordinates.
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(lon, lat, STEP_MAX).map(|c| c.align52())
}

fn decode(cell: Cell) -> Option<Area> {
    if cell.is_none() {
        return None;
    }
    let lat_cell = squash(cell.bits);
    let lon_cell = squash(cell.bits >> 1);
    let scale = (1u64 << cell.step) as f64;
    let (lat_span, lon_span) = (LAT_MAX - LAT_MIN, LONG_MAX - LONG_MIN);
    let edge = |i: u32, min: f64, span: f64| {
        (min + (f64::from(i) * 1.0 / scale) * span, min + ((f64::from(i) + 1.0) * 1.0 / scale) * span)
    };
    Some(Area { lat: edge(lat_cell, LAT_MIN, lat_span), lon: edge(lon_cell, LONG_MIN, lon_span) })
}

/// The point a score stands for: its cell's centre, clamped to the
/// supported coordinates.
pub fn decode_score(score: f64) -> Option<(f64, f64)> {
    let area = decode(Cell { bits: score as u64, step: STEP_MAX })?;
    let lon = ((area.lon.0 + area.lon.1) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.lat.0 + area.lat.1) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some((lon, lat))
}

/// The standard 11-character geohash of a score (Redis re-encodes the
/// point with latitude in ±90°; the 11th character is always '0').
pub fn geohash_string(score: f64) -> Option<[u8; 11]> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode_score(score)?;
    let cell = encode_in((-180.0, 180.0), (-90.0, 90.0), lon, lat, STEP_MAX)?;
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().take(10).enumerate() {
        *c = ALPHABET[((cell.bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    Some(out)
}

fn moved(cell: Cell, dx: i8, dy: i8) -> Cell {
    let shift = 64 - u32::from(cell.step) * 2;
    let mut bits = cell.bits;
    // Longitude bits are the odd positions, latitude the even.
    for (d, mask) in [(dx, 0xaaaa_aaaa_aaaa_aaaa_u64), (dy, 0x5555_5555_5555_5555_u64)] {
        if d == 0 {
            continue;
        }
        let mut v = bits & mask;
        let rest = bits & !mask;
        let zz = !mask >> shift;
        if d > 0 {
            v = v.wrapping_add(zz + 1);
        } else {
            v |= zz;
            v = v.wrapping_sub(zz + 1);
        }
        v &= mask >> shift;
        bits = v | rest;
    }
    Cell { bits, step: cell.step }
}

/// What a search covers: a circle (radius) or an axis-aligned box
/// (width, height), in metres once scaled by `to_m`, around a point.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Radius(f64),
    Box(f64, f64),
}

#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub lon: f64,
    pub lat: f64,
    pub shape: Shape,
    /// Metres per unit of the shape's sizes.
    pub to_m: f64,
}

fn steps_for_radius(mut range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_m < MERCATOR_MAX {
        range_m *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

pub fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Haversine distance in metres, as Redis computes it.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((deg_rad(lon2) - deg_rad(lon1)) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

impl Search {
    fn half_sizes_m(&self) -> (f64, f64) {
        match self.shape {
            Shape::Radius(r) => (r * self.to_m, r * self.to_m),
            Shape::Box(w, h) => (w / 2.0 * self.to_m, h / 2.0 * self.to_m),
        }
    }

    /// (min lon, min lat, max lon, max lat) of the shape.
    fn bounds(&self) -> [f64; 4] {
        let (width, height) = self.half_sizes_m();
        let lat_delta = rad_deg(height / EARTH_RADIUS_M);
        let top = rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat + lat_delta).cos());
        let bottom = rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat - lat_delta).cos());
        let delta = if self.lat < 0.0 { bottom } else { top };
        [self.lon - delta, self.lat - lat_delta, self.lon + delta, self.lat + lat_delta]
    }

    /// The cells to scan, in Redis's order (centre, N, S, E, W, NE, NW,
    /// SE, SW), those the shape cannot reach left out and a cell equal
    /// to the one scanned before it skipped.
    pub fn cells(&self) -> Vec<Cell> {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let radius_m = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
        } * self.to_m;
        let mut steps = steps_for_radius(radius_m, self.lat);
        let around = |steps: u8| {
            let centre = encode(self.lon, self.lat, steps).unwrap_or(Cell::NONE);
            let n: Vec<Cell> = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)]
                .iter()
                .map(|&(dx, dy)| moved(centre, dx, dy))
                .collect();
            (centre, n)
        };
        let (mut centre, mut n) = around(steps);
        let area_of = |c: Cell| decode(c).unwrap_or_default();
        let too_coarse = area_of(n[0]).lat.1 < max_lat
            || area_of(n[1]).lat.0 > min_lat
            || area_of(n[2]).lon.1 < max_lon
            || area_of(n[3]).lon.0 > min_lon;
        if steps > 1 && too_coarse {
            steps -= 1;
            (centre, n) = around(steps);
        }
        let area = area_of(centre);
        if steps >= 2 {
            // [N, S, E, W, NE, NW, SE, SW]
            let mut drop = |idx: [usize; 3]| idx.iter().for_each(|&i| n[i] = Cell::NONE);
            if area.lat.0 < min_lat {
                drop([1, 7, 6]);
            }
            if area.lat.1 > max_lat {
                drop([0, 4, 5]);
            }
            if area.lon.0 < min_lon {
                drop([3, 7, 5]);
            }
            if area.lon.1 > max_lon {
                drop([2, 6, 4]);
            }
        }
        // Redis compares with the last cell scanned only once a neighbour
        // was (a neighbour equal to the centre is scanned twice).
        let mut cells = Vec::with_capacity(9);
        let mut last_neighbour: Option<Cell> = None;
        for (i, cell) in std::iter::once(centre).chain(n).enumerate() {
            if cell.is_none() || (last_neighbour.is_some() && last_neighbour == Some(cell)) {
                continue;
            }
            cells.push(cell);
            if i > 0 {
                last_neighbour = Some(cell);
            }
        }
        cells
    }

    /// The distance in metres to a point inside the shape; None outside.
    pub fn within(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(r) => Some(distance(self.lon, self.lat, lon, lat)).filter(|d| *d <= r * self.to_m),
            Shape::Box(w, h) => {
                if lat_distance(lat, self.lat) > h * self.to_m / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > w * self.to_m / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }
}

/// A distance as Redis prints it: rounded (half to even) to 4 decimals.
pub fn format_distance(d: f64) -> String {
    let scaled = (d * 10000.0).round_ties_even() as i64;
    let sign = if scaled < 0 { "-" } else { "" };
    let v = scaled.unsigned_abs();
    format!("{sign}{}.{:04}", v / 10000, v % 10000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_points_round_trip_as_in_redis() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo": Redis stores this.
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698));
        let (lon, lat) = decode_score(3479099956230698.0).unwrap();
        assert!((lon - 13.361389).abs() < 1e-5 && (lat - 38.115556).abs() < 1e-5);
        assert_eq!(score_of(0.0, 86.0), None);
        assert_eq!(score_of(181.0, 0.0), None);
    }

    #[test]
    fn geohash_strings_are_the_standard_ones() {
        let s = score_of(13.361389, 38.115556).unwrap() as f64;
        assert_eq!(&geohash_string(s).unwrap(), b"sqc8b49rny0");
        let s = score_of(15.087269, 37.502669).unwrap() as f64;
        assert_eq!(&geohash_string(s).unwrap(), b"sqdtr74hyu0");
    }

    #[test]
    fn distances_match_the_documented_examples() {
        // Palermo to Catania, from GEODIST's documentation: 166274.1516 m.
        let (a, b) = (decode_score(3479099956230698.0).unwrap(), decode_score(3479447370796909.0).unwrap());
        assert_eq!(format_distance(distance(a.0, a.1, b.0, b.1)), "166274.1516");
        assert_eq!(format_distance(0.0), "0.0000");
        assert_eq!(format_distance(0.00005), "0.0000");
        assert_eq!(format_distance(-1.5), "-1.5000");
        assert_eq!(format_distance(12.5), "12.5000");
    }

    #[test]
    fn neighbours_move_one_cell() {
        let c = encode(0.0, 0.0, 4).unwrap();
        let east = moved(c, 1, 0);
        let back = moved(east, -1, 0);
        assert_eq!(back, c);
        let a = decode(c).unwrap();
        let e = decode(east).unwrap();
        assert!((e.lon.0 - a.lon.1).abs() < 1e-9 && e.lat == a.lat);
    }

    #[test]
    fn interleaving_inverts() {
        for v in [0u32, 1, 0xdead_beef, u32::MAX] {
            assert_eq!(squash(spread(v)), v);
            assert_eq!(squash(spread(v) << 1 >> 1), v);
        }
    }
}
