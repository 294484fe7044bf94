//! NumPy `.npy` files holding 2-D float feature matrices.
//!
//! MMRec datasets ship item features as `.npy`. A hand-written reader keeps the
//! engine free of heavy dependencies, and it accepts only what feature files
//! use (little-endian float16 or float32, C order, 2-D, finite values): any
//! other variant is refused with a message naming what was found rather than
//! being misread into silently wrong features.

use std::path::Path;

use ndarray::Array2;

use fedmr_core::{Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Reads a 2-D `<f2` or `<f4` array; float16 values are widened to f32.
pub fn read_npy_f32(path: &Path) -> Result<Array2<f32>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_npy_f32(&bytes, path)
}

/// Parses the bytes of a `.npy` file; `path_for_errors` only labels errors.
pub fn parse_npy_f32(bytes: &[u8], path_for_errors: &Path) -> Result<Array2<f32>> {
    let err = |message: String| Error::Format {
        path: path_for_errors.to_path_buf(),
        message,
    };
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        let shown = &bytes[..bytes.len().min(6)];
        return Err(err(format!(
            "not a .npy file: bad magic {shown:02x?} (expected \\x93NUMPY)"
        )));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let len_size = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(err(format!(
                "unsupported .npy version {major}.{minor} (supported: 1.0, 2.0, 3.0)"
            )));
        }
    };
    let prefix = 8 + len_size;
    if bytes.len() < prefix {
        return Err(err("truncated file: header length missing".into()));
    }
    let header_len = if len_size == 2 {
        u16::from_le_bytes([bytes[8], bytes[9]]) as usize
    } else {
        u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
    };
    let header_end = prefix + header_len;
    if bytes.len() < header_end {
        return Err(err(format!(
            "truncated file: header declares {header_len} bytes but only {} follow",
            bytes.len() - prefix
        )));
    }
    let header = std::str::from_utf8(&bytes[prefix..header_end])
        .map_err(|_| err("header is not ASCII/UTF-8 text".into()))?;
    let (dtype, rows, cols) = interpret_header(header).map_err(err)?;

    let data = &bytes[header_end..];
    let expected = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| err(format!("shape ({rows}, {cols}) is too large")))?;
    if data.len() < expected {
        return Err(err(format!(
            "truncated file: shape ({rows}, {cols}) of {} needs {expected} data bytes, found {}",
            dtype.name(),
            data.len()
        )));
    }
    if data.len() > expected {
        return Err(err(format!(
            "{} unexpected bytes after the data of shape ({rows}, {cols}) {}",
            data.len() - expected,
            dtype.name()
        )));
    }

    let values: Vec<f32> = match dtype {
        Dtype::F2 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        Dtype::F4 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    };
    if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
        return Err(err(format!(
            "non-finite value {} at row {}, column {}",
            values[pos],
            pos / cols,
            pos % cols
        )));
    }
    Array2::from_shape_vec((rows, cols), values).map_err(|e| err(e.to_string()))
}

/// Writes a float32, C-order, version 1.0 file that NumPy reads as is.
pub fn write_npy_f32(path: &Path, array: &Array2<f32>) -> Result<()> {
    std::fs::write(path, encode_npy_f32(array)).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn encode_npy_f32(array: &Array2<f32>) -> Vec<u8> {
    let (rows, cols) = array.dim();
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // NumPy aligns the data start to 64 bytes and ends the header with '\n'.
    while !(MAGIC.len() + 4 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + 4 * rows * cols);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // A 2-D shape always fits: the header is under 100 bytes.
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    // `iter` walks in logical (row-major) order whatever the memory layout.
    for v in array.iter() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dtype {
    F2,
    F4,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F2 => 2,
            Dtype::F4 => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dtype::F2 => "'<f2'",
            Dtype::F4 => "'<f4'",
        }
    }
}

/// Checks the header's dict against what we support; returns dtype and shape.
fn interpret_header(header: &str) -> Result<(Dtype, usize, usize), String> {
    let entries = parse_dict(header)
        .map_err(|e| format!("cannot parse header {:?}: {e}", header.trim_end()))?;
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("header has no '{key}' entry: {:?}", header.trim_end()))
    };
    let dtype = match get("descr")? {
        PyValue::Str(d) => match d.as_str() {
            "<f2" => Dtype::F2,
            "<f4" => Dtype::F4,
            ">f2" | ">f4" => {
                return Err(format!(
                    "big-endian dtype '{d}' is not supported (save as little-endian '<f2' or '<f4')"
                ));
            }
            other => {
                return Err(format!(
                    "unsupported dtype '{other}': only '<f2' (float16) and '<f4' (float32) are read"
                ));
            }
        },
        other => {
            return Err(format!(
                "unsupported dtype {other:?} (structured dtypes are not read)"
            ));
        }
    };
    match get("fortran_order")? {
        PyValue::Bool(false) => {}
        PyValue::Bool(true) => {
            return Err(
                "fortran_order is True: column-major arrays are not supported (save a C-order array)"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "fortran_order is {other:?}, expected True or False"
            ));
        }
    }
    match get("shape")? {
        PyValue::Tuple(dims) if dims.len() == 2 => Ok((dtype, dims[0], dims[1])),
        PyValue::Tuple(dims) => Err(format!(
            "expected a 2-D array, found shape {dims:?} ({}-D)",
            dims.len()
        )),
        other => Err(format!("shape is {other:?}, expected a tuple")),
    }
}

#[derive(Debug, PartialEq)]
enum PyValue {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses the Python dict literal NumPy writes: string keys, and values that
/// are strings, booleans or tuples of non-negative integers.
fn parse_dict(text: &str) -> Result<Vec<(String, PyValue)>, String> {
    let mut p = Cursor {
        s: text.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let mut entries = Vec::new();
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        let value = p.value()?;
        entries.push((key, value));
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        p.expect(b',')?;
    }
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text after the dict at byte {}", p.i));
    }
    Ok(entries)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_ws();
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote)
            .ok_or("unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn value(&mut self) -> Result<PyValue, String> {
        match self.peek() {
            Some(b'\'' | b'"') => self.string().map(PyValue::Str),
            Some(b'(') => {
                self.i += 1;
                let mut dims = Vec::new();
                loop {
                    self.skip_ws();
                    if self.eat(b')') {
                        break;
                    }
                    dims.push(self.integer()?);
                    self.skip_ws();
                    if self.eat(b')') {
                        break;
                    }
                    self.expect(b',')?;
                }
                Ok(PyValue::Tuple(dims))
            }
            _ if self.s[self.i..].starts_with(b"True") => {
                self.i += 4;
                Ok(PyValue::Bool(true))
            }
            _ if self.s[self.i..].starts_with(b"False") => {
                self.i += 5;
                Ok(PyValue::Bool(false))
            }
            _ => Err(format!("unsupported value at byte {}", self.i)),
        }
    }

    fn integer(&mut self) -> Result<usize, String> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        let n = digits
            .parse::<usize>()
            .map_err(|_| format!("expected a non-negative integer at byte {start}"))?;
        // Python 2 era files write longs as `560L`.
        self.eat(b'L');
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn p() -> &'static Path {
        Path::new("test.npy")
    }

    /// A file built by hand: any header text, any version, any payload.
    fn npy(version: (u8, u8), header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        let len_size = if version.0 == 1 { 2 } else { 4 };
        while !(8 + len_size + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version.0, version.1]);
        if len_size == 2 {
            out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(h.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn f4_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn header(descr: &str, fortran: &str, shape: &str) -> String {
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
    }

    fn format_message(r: Result<Array2<f32>>) -> String {
        match r {
            Err(Error::Format { message, .. }) => message,
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_through_a_file() {
        let a = array![[1.0f32, -2.5, 3.25], [0.0, 1e-8, -7e10]];
        let dir = fedmr_test_support::TempDir::new("npy");
        let path = dir.0.join("a.npy");
        write_npy_f32(&path, &a).unwrap();
        let b = read_npy_f32(&path);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(b.unwrap(), a);
        // NumPy's layout: data starts on a 64-byte boundary after a '\n'.
        let data_start = bytes.len() - 6 * 4;
        assert_eq!(data_start % 64, 0);
        assert_eq!(bytes[data_start - 1], b'\n');
    }

    #[test]
    fn round_trip_of_a_transposed_view_keeps_logical_order() {
        let a = array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]];
        let t = a.t().to_owned();
        let back = parse_npy_f32(&encode_npy_f32(&t), p()).unwrap();
        assert_eq!(back, array![[1.0f32, 3.0, 5.0], [2.0, 4.0, 6.0]]);
    }

    #[test]
    fn float16_file_built_by_hand() {
        // 1.0 = 0x3C00, -2.0 = 0xC000, 0.5 = 0x3800, 65504 = 0x7BFF (max f16).
        let bits: [u16; 4] = [0x3C00, 0xC000, 0x3800, 0x7BFF];
        let data: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let bytes = npy((1, 0), &header("<f2", "False", "(2, 2)"), &data);
        let a = parse_npy_f32(&bytes, p()).unwrap();
        assert_eq!(a, array![[1.0f32, -2.0], [0.5, 65504.0]]);
    }

    #[test]
    fn versions_2_and_3_and_python2_longs_are_read() {
        let data = f4_bytes(&[1.0, 2.0]);
        for v in [(2, 0), (3, 0)] {
            let bytes = npy(v, &header("<f4", "False", "(1, 2)"), &data);
            assert_eq!(parse_npy_f32(&bytes, p()).unwrap(), array![[1.0f32, 2.0]]);
        }
        let bytes = npy((1, 0), &header("<f4", "False", "(2L, 1L)"), &data);
        assert_eq!(parse_npy_f32(&bytes, p()).unwrap(), array![[1.0f32], [2.0]]);
    }

    #[test]
    fn zero_rows_is_an_empty_matrix() {
        let bytes = npy((1, 0), &header("<f4", "False", "(0, 512)"), &[]);
        assert_eq!(parse_npy_f32(&bytes, p()).unwrap().dim(), (0, 512));
    }

    #[test]
    fn bad_magic_is_refused() {
        let m = format_message(parse_npy_f32(b"PK\x03\x04 not numpy", p()));
        assert!(m.contains("bad magic"), "{m}");
        let m = format_message(parse_npy_f32(b"", p()));
        assert!(m.contains("bad magic"), "{m}");
    }

    #[test]
    fn unsupported_version_is_named() {
        let bytes = npy((4, 0), &header("<f4", "False", "(1, 1)"), &f4_bytes(&[1.0]));
        let m = format_message(parse_npy_f32(&bytes, p()));
        assert!(m.contains("version 4.0"), "{m}");
    }

    #[test]
    fn other_dtypes_are_named() {
        for (descr, needle) in [
            ("<f8", "'<f8'"),
            ("|u1", "'|u1'"),
            ("<i4", "'<i4'"),
            (">f4", "big-endian dtype '>f4'"),
            (">f2", "big-endian dtype '>f2'"),
        ] {
            let bytes = npy((1, 0), &header(descr, "False", "(1, 1)"), &[0; 8]);
            let m = format_message(parse_npy_f32(&bytes, p()));
            assert!(m.contains(needle), "{descr}: {m}");
        }
        let structured = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1, 1), }";
        let m = format_message(parse_npy_f32(&npy((1, 0), structured, &[0; 4]), p()));
        assert!(m.contains("cannot parse header"), "{m}");
    }

    #[test]
    fn fortran_order_is_refused() {
        let bytes = npy((1, 0), &header("<f4", "True", "(1, 1)"), &f4_bytes(&[1.0]));
        let m = format_message(parse_npy_f32(&bytes, p()));
        assert!(m.contains("fortran_order is True"), "{m}");
    }

    #[test]
    fn shapes_other_than_2d_are_refused() {
        for (shape, dims) in [("(4,)", "1-D"), ("(1, 2, 2)", "3-D"), ("()", "0-D")] {
            let bytes = npy((1, 0), &header("<f4", "False", shape), &f4_bytes(&[1.0; 4]));
            let m = format_message(parse_npy_f32(&bytes, p()));
            assert!(
                m.contains("expected a 2-D array") && m.contains(dims),
                "{shape}: {m}"
            );
        }
    }

    #[test]
    fn truncated_data_and_trailing_bytes_are_refused() {
        let h = header("<f4", "False", "(2, 2)");
        let m = format_message(parse_npy_f32(&npy((1, 0), &h, &f4_bytes(&[1.0; 3])), p()));
        assert!(m.contains("truncated") && m.contains("needs 16"), "{m}");
        let m = format_message(parse_npy_f32(&npy((1, 0), &h, &f4_bytes(&[1.0; 5])), p()));
        assert!(m.contains("4 unexpected bytes"), "{m}");
        // A header cut short.
        let full = npy((1, 0), &h, &[]);
        let m = format_message(parse_npy_f32(&full[..30], p()));
        assert!(m.contains("truncated"), "{m}");
    }

    #[test]
    fn non_finite_values_name_their_row() {
        let h = header("<f4", "False", "(3, 2)");
        let data = f4_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, f32::NAN]);
        let m = format_message(parse_npy_f32(&npy((1, 0), &h, &data), p()));
        assert!(m.contains("row 2") && m.contains("column 1"), "{m}");
        // f16 infinity (0x7C00) too.
        let h = header("<f2", "False", "(2, 1)");
        let m = format_message(parse_npy_f32(&npy((1, 0), &h, &[0, 0, 0x00, 0x7C]), p()));
        assert!(m.contains("inf") && m.contains("row 1"), "{m}");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let path = Path::new("/definitely/not/here/x_features.npy");
        match read_npy_f32(path) {
            Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected Io error, got {other:?}"),
        }
    }
}
