//! Loading a CSV of numeric features with an integer class label, with errors that name the place.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::limits::{MAX_CLASSES, MAX_VALUES, MAX_WIDTH};

/// The digits data set bundled with the project (UCI optdigits test portion, CC BY 4.0).
pub const BUNDLED_DIGITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");

/// What is wrong with a data file; every variant names the file, and the line and column where known.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: only a header, no data rows")]
    HeaderOnly { path: PathBuf },
    #[error("{path}: no {what} column named `{name}` (columns: {columns})")]
    NoSuchColumn { path: PathBuf, what: &'static str, name: String, columns: String },
    #[error("{path}: need at least one feature column and a label column, found {found} column(s)")]
    TooFewColumns { path: PathBuf, found: usize },
    #[error("{path}, line {line}: {found} fields where the header has {expected}")]
    Ragged { path: PathBuf, line: u64, expected: usize, found: usize },
    #[error("{path}, line {line}, column `{column}`: `{value}` is not a number")]
    NotNumeric { path: PathBuf, line: u64, column: String, value: String },
    #[error("{path}, line {line}, column `{column}`: `{value}` is not finite")]
    NotFinite { path: PathBuf, line: u64, column: String, value: String },
    #[error("{path}, line {line}, column `{column}`: label `{value}` is not a non-negative integer")]
    BadLabel { path: PathBuf, line: u64, column: String, value: String },
    #[error("{path}: {found} class(es) in column `{column}`, at least two are needed")]
    TooFewClasses { path: PathBuf, column: String, found: usize },
    #[error("{path}, line {line}: not readable as CSV")]
    Csv { path: PathBuf, line: u64, source: csv::Error },
    #[error("{path}, line {line}, column `{column}`: label {value} is above the limit {limit} (at most {classes} classes, labels 0 to {limit})", classes = .limit + 1)]
    LabelTooLarge { path: PathBuf, line: u64, column: String, value: u64, limit: usize },
    #[error("{path}, line {line}, column `{column}`: `{value}` is not a part (use train, val or test)")]
    BadPart { path: PathBuf, line: u64, column: String, value: String },
    #[error("{path}: the split column and the label column are both `{column}`")]
    SplitIsLabel { path: PathBuf, column: String },
    #[error("{path}: column name `{name}` appears twice (columns {first} and {second})")]
    DuplicateColumn { path: PathBuf, name: String, first: usize, second: usize },
    #[error("{path}: {found} columns, above the limit of {limit} features plus a label")]
    TooManyColumns { path: PathBuf, found: usize, limit: usize },
    #[error("{path}: line 1 is blank; the first line must name the columns or hold the first row")]
    BlankFirstLine { path: PathBuf },
    #[error("{path}, line {line}: more than {limit} values in all, above the limit (4 GiB of f32)")]
    TooManyValues { path: PathBuf, line: u64, limit: usize },
}

/// Rows of features (row-major) with one class label per row.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Where the data came from.
    pub source: PathBuf,
    /// Feature column names, in order.
    pub feature_names: Vec<String>,
    /// Name of the label column (empty when the file had none).
    pub label_name: String,
    /// `rows * features` values, row-major.
    pub features: Vec<f32>,
    /// One class label per row (empty when the file had no label column, or when a label is not
    /// a class: see `label_issue`).
    pub labels: Vec<u32>,
    /// `max(label) + 1`.
    pub classes: usize,
    /// The label column's values as reals, one per row (empty without a label column): the
    /// targets of a regression, the anomaly flags of an autoencoder's evaluation rows.
    pub targets: Vec<f32>,
    /// The first label that is not a class (not a non-negative integer, or above the limit):
    /// `(line, value)`. Such a column can only be a regression's targets.
    pub label_issue: Option<(u64, String)>,
    /// Whether the first row named the columns ([`Header::Present`]) or was data ([`Header::Absent`]).
    pub header: Header,
    /// The part of each row, from the user's split column or files (empty: split by the seed).
    pub parts: Vec<Part>,
    /// The other files the rows came from (a user's validation and test files).
    pub other_sources: Vec<PathBuf>,
}

/// Which part of a user's own split a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Rows to fit on.
    Train,
    /// Rows to choose models by.
    Val,
    /// Held-out rows.
    Test,
}

impl Part {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "train" => Some(Part::Train),
            "val" | "validation" => Some(Part::Val),
            "test" => Some(Part::Test),
            _ => None,
        }
    }
}

impl Dataset {
    /// Every file the rows came from: [`Dataset::source`], then [`Dataset::other_sources`].
    pub fn files(&self) -> Vec<&Path> {
        std::iter::once(self.source.as_path()).chain(self.other_sources.iter().map(PathBuf::as_path)).collect()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.features.len() / self.width()
    }

    /// Number of features per row.
    pub fn width(&self) -> usize {
        self.feature_names.len().max(1)
    }

    /// Row `i`'s features.
    pub fn row(&self, i: usize) -> &[f32] {
        let w = self.width();
        &self.features[i * w..(i + 1) * w]
    }
}

/// Whether the first row of a CSV names the columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Header {
    /// A first row of numbers only is data (what `numpy.savetxt` writes); anything else names
    /// the columns.
    #[default]
    Auto,
    /// The first row names the columns (`--header`).
    Present,
    /// Every row is data (`--no-header`); the columns are called `column 1`, `column 2`, ...
    Absent,
}

/// What to tell the user when [`Header::Auto`] read the first row as data.
pub fn header_note(data: &Dataset, asked: Header) -> Option<String> {
    (asked == Header::Auto && data.header == Header::Absent).then(|| {
        format!(
            "note: {}: the first row is all numbers, so every row is data and the columns are `column 1` to `column {}` (pass --header if the first row names the columns)",
            data.source.display(),
            data.width() + usize::from(!data.label_name.is_empty())
        )
    })
}

/// True when every field of the first row is a number.
fn first_row_is_numeric(bytes: &[u8]) -> bool {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(bytes);
    let mut first = csv::StringRecord::new();
    matches!(reader.read_record(&mut first), Ok(true))
        && first.iter().all(|f| !f.is_empty() && f.parse::<f64>().is_ok())
}

/// Which column holds the label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LabelColumn {
    /// The last column (the default).
    #[default]
    Last,
    /// The column with this header name.
    Named(String),
    /// No label column: every column is a feature (for prediction).
    None,
}

/// A class label: a non-negative integer, also when written as a float with no fraction (`2.0`,
/// as numpy and pandas write integer columns that held a NaN once).
fn parse_label(field: &str) -> Option<u64> {
    if let Ok(v) = field.parse::<u64>() {
        return Some(v);
    }
    let v: f64 = field.parse().ok()?;
    (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

/// The columns as an error lists them: all of them, or the first 12 and how many in all.
fn column_list(header: &[String]) -> String {
    if header.len() <= 16 {
        return header.join(", ");
    }
    format!("{}, ... ({} columns)", header[..12].join(", "), header.len())
}

/// Loads a CSV file. Features must be finite numbers; labels non-negative integers.
pub fn load_csv(path: &Path, label: &LabelColumn, header: Header) -> Result<Dataset, DataError> {
    load_csv_reporting(path, label, header, None, &mut |_, _| {})
}

/// [`load_csv`] with a split column, calling `on_bytes(read, total)` as the file streams in (at
/// most once per MiB), so a caller can show a progress bar on a large file.
pub fn load_csv_reporting(
    path: &Path,
    label: &LabelColumn,
    header: Header,
    split_column: Option<&str>,
    on_bytes: &mut dyn FnMut(u64, u64),
) -> Result<Dataset, DataError> {
    let io = |source| DataError::Io { path: path.to_path_buf(), source };
    crate::input::check_regular(path).map_err(io)?;
    let file = std::fs::File::open(path).map_err(io)?;
    let total = file.metadata().map_err(io)?.len();
    // the progress counts the file's bytes, compressed or not
    let counted = Counting { inner: file, read: 0, reported: 0, total, on_bytes };
    let file = crate::input::LineBound::new(decompressed(path, counted));
    let mut reader = BufReader::with_capacity(1 << 20, file);
    // The first line decides whether it names the columns; it is read again as part of the CSV.
    let mut first = Vec::new();
    reader.read_until(b'\n', &mut first).map_err(io)?;
    if first.iter().all(u8::is_ascii_whitespace) && !first.is_empty() {
        // a blank first line before data is its own mistake, not an empty file
        let mut rest = Vec::new();
        while reader.read_until(b'\n', &mut rest).map_err(io)? > 0 {
            if !rest.iter().all(u8::is_ascii_whitespace) {
                return Err(DataError::BlankFirstLine { path: path.to_path_buf() });
            }
            rest.clear();
        }
    }
    let first_line = first.clone();
    parse_stream(std::io::Cursor::new(first).chain(reader), &first_line, path, label, header, split_column)
}

/// Whether `path` names a gzip-compressed file (`.gz`).
fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// `file`'s text: decompressed as it streams when `path` ends in `.gz` (`data.csv.gz`), as it is
/// otherwise. A corrupt stream is a read error naming the file.
fn decompressed<'a, R: Read + 'a>(path: &Path, file: R) -> Box<dyn Read + 'a> {
    if is_gzip(path) {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    }
}

/// A reader that counts the bytes it hands out and reports them every MiB.
struct Counting<'a, R> {
    inner: R,
    read: u64,
    reported: u64,
    total: u64,
    on_bytes: &'a mut dyn FnMut(u64, u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read - self.reported >= 1 << 20 || (n == 0 && self.read > self.reported) {
            self.reported = self.read;
            (self.on_bytes)(self.read, self.total);
        }
        Ok(n)
    }
}

/// Parses CSV `bytes` as [`load_csv`] does; `path` names them in errors. With `split_column`, that
/// column says each row's part (`train`, `val`, `test`) and is not a feature.
pub fn parse_csv(
    bytes: &[u8],
    path: &Path,
    label: &LabelColumn,
    header: Header,
    split_column: Option<&str>,
) -> Result<Dataset, DataError> {
    parse_stream(bytes, bytes, path, label, header, split_column)
}

/// A field's number: plain digits (pixels, counts) directly, anything else through
/// `str::parse::<f32>`; the same value either way (an integer of at most seven digits is exact in
/// f32), without the UTF-8 check and the general parser on the common case.
fn number(bytes: &[u8]) -> Option<f32> {
    if !bytes.is_empty() && bytes.len() <= 7 && bytes.iter().all(u8::is_ascii_digit) {
        return Some(bytes.iter().fold(0u32, |n, d| n * 10 + (d - b'0') as u32) as f32);
    }
    std::str::from_utf8(bytes).ok()?.parse::<f32>().ok()
}

/// The loader: `input` streams the whole CSV; `start` is at least its first line (for telling a
/// header from data). One record buffer is reused for every row; numbers are parsed from its bytes.
fn parse_stream<R: Read>(
    input: R,
    start: &[u8],
    path: &Path,
    label: &LabelColumn,
    header: Header,
    split_column: Option<&str>,
) -> Result<Dataset, DataError> {
    let p = || path.to_path_buf();
    if start.iter().all(u8::is_ascii_whitespace) {
        return Err(DataError::Empty { path: p() });
    }
    let named = match header {
        Header::Present => true,
        Header::Absent => false,
        Header::Auto => !first_row_is_numeric(start),
    };
    let mut reader = csv::ReaderBuilder::new().flexible(true).has_headers(named).from_reader(input);
    let first = reader.byte_headers().map_err(|source| DataError::Csv { path: p(), line: 1, source })?;
    let header_kind = if named { Header::Present } else { Header::Absent };
    let header: Vec<String> = if named {
        first.iter().map(|h| String::from_utf8_lossy(h.trim_ascii()).into_owned()).collect()
    } else {
        (1..=first.len()).map(|i| format!("column {i}")).collect()
    };
    let label_index = match label {
        LabelColumn::Last => Some(header.len().saturating_sub(1)),
        LabelColumn::Named(name) => Some(header.iter().position(|h| h == name).ok_or_else(|| {
            DataError::NoSuchColumn { path: p(), what: "label", name: name.clone(), columns: column_list(&header) }
        })?),
        LabelColumn::None => None,
    };
    let split_index = match split_column {
        Some(name) => Some(header.iter().position(|h| h == name).ok_or_else(|| DataError::NoSuchColumn {
            path: p(),
            what: "split",
            name: name.to_string(),
            columns: column_list(&header),
        })?),
        None => None,
    };
    if split_index.is_some() && split_index == label_index {
        return Err(DataError::SplitIsLabel { path: p(), column: split_column.unwrap_or_default().to_string() });
    }
    let min_columns = 1 + usize::from(label_index.is_some()) + usize::from(split_index.is_some());
    if header.len() < min_columns {
        return Err(DataError::TooFewColumns { path: p(), found: header.len() });
    }
    if header.len() > MAX_WIDTH + 1 {
        return Err(DataError::TooManyColumns { path: p(), found: header.len(), limit: MAX_WIDTH });
    }
    for (second, name) in header.iter().enumerate() {
        if let Some(first) = header[..second].iter().position(|h| h == name) {
            return Err(DataError::DuplicateColumn {
                path: p(),
                name: name.clone(),
                first: first + 1,
                second: second + 1,
            });
        }
    }
    let feature_names: Vec<String> = header
        .iter()
        .enumerate()
        .filter(|(i, _)| ![label_index, split_index].contains(&Some(*i)))
        .map(|(_, h)| h.clone())
        .collect();
    let mut parts = Vec::new();
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut targets = Vec::new();
    let mut label_issue: Option<(u64, String, DataError)> = None;
    let mut record = csv::ByteRecord::new();
    loop {
        let more = reader.read_byte_record(&mut record).map_err(|source| {
            let line = source.position().map_or(0, |pos| pos.line());
            DataError::Csv { path: p(), line, source }
        })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |pos| pos.line());
        if record.len() != header.len() {
            return Err(DataError::Ragged { path: p(), line, expected: header.len(), found: record.len() });
        }
        for (i, bytes) in record.iter().enumerate() {
            let column = || header[i].clone();
            let bytes = bytes.trim_ascii();
            if Some(i) != split_index && Some(i) != label_index {
                // The common case, a feature: parsed straight from the record's bytes.
                let value = number(bytes).ok_or_else(|| DataError::NotNumeric {
                    path: p(),
                    line,
                    column: column(),
                    value: String::from_utf8_lossy(bytes).into_owned(),
                })?;
                if !value.is_finite() {
                    let value = String::from_utf8_lossy(bytes).into_owned();
                    return Err(DataError::NotFinite { path: p(), line, column: column(), value });
                }
                if features.len() >= MAX_VALUES {
                    return Err(DataError::TooManyValues { path: p(), line, limit: MAX_VALUES });
                }
                features.push(value);
                continue;
            }
            let text = String::from_utf8_lossy(bytes);
            let field: &str = &text;
            if Some(i) == split_index {
                let part = Part::parse(field).ok_or_else(|| DataError::BadPart {
                    path: p(),
                    line,
                    column: column(),
                    value: field.to_string(),
                })?;
                parts.push(part);
                continue;
            }
            if Some(i) == label_index {
                let target = field.parse::<f32>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                    DataError::BadLabel { path: p(), line, column: column(), value: field.to_string() }
                })?;
                targets.push(target);
                if label_issue.is_some() {
                    continue;
                }
                match parse_label(field) {
                    Some(value) if value < MAX_CLASSES as u64 => labels.push(value as u32),
                    Some(value) => {
                        let limit = MAX_CLASSES - 1;
                        let e = DataError::LabelTooLarge { path: p(), line, column: column(), value, limit };
                        label_issue = Some((line, field.to_string(), e));
                    }
                    None => {
                        let e = DataError::BadLabel { path: p(), line, column: column(), value: field.to_string() };
                        label_issue = Some((line, field.to_string(), e));
                    }
                }
            }
        }
    }
    if features.is_empty() {
        return Err(DataError::HeaderOnly { path: p() });
    }
    features.shrink_to_fit();
    let label_name = label_index.map(|i| header[i].clone()).unwrap_or_default();
    if label_issue.is_some() {
        labels.clear();
    }
    let classes = labels.iter().max().map_or(0, |m| *m as usize + 1);
    Ok(Dataset {
        source: p(),
        feature_names,
        label_name,
        features,
        labels,
        classes,
        targets,
        label_issue: label_issue.map(|(line, value, _)| (line, value)),
        header: header_kind,
        parts,
        other_sources: Vec::new(),
    })
}

/// Loads a CSV for a model taking `width` inputs: every column is a feature, except a label
/// column when the CSV has one more column than the model has inputs (the last, or the one named).
pub fn load_csv_for_model(
    path: &Path,
    width: usize,
    label_column: Option<&String>,
    header: Header,
) -> anyhow::Result<Dataset> {
    let label = match label_column {
        Some(name) => LabelColumn::Named(name.clone()),
        None => {
            // Only the first line is read to count the columns; the file then streams as usual.
            let io = |source| DataError::Io { path: path.to_path_buf(), source };
            crate::input::check_regular(path).map_err(io)?;
            let mut first = Vec::new();
            BufReader::new(crate::input::LineBound::new(decompressed(path, std::fs::File::open(path).map_err(io)?)))
                .read_until(b'\n', &mut first)
                .map_err(io)?;
            let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&first[..]);
            let columns =
                reader.headers().map_err(|source| DataError::Csv { path: path.into(), line: 1, source })?.len();
            if columns == width + 1 {
                LabelColumn::Last
            } else {
                LabelColumn::None
            }
        }
    };
    let data = load_csv(path, &label, header)?;
    if data.width() != width {
        anyhow::bail!("{}: {} feature columns, the model takes {width}", path.display(), data.width());
    }
    Ok(data)
}

/// The error naming a label that is not a class.
pub fn class_label_error(data: &Dataset, line: u64, value: &str) -> DataError {
    let (path, column) = (data.source.clone(), data.label_name.clone());
    match parse_label(value) {
        Some(value) => DataError::LabelTooLarge { path, line, column, value, limit: MAX_CLASSES - 1 },
        None => DataError::BadLabel { path, line, column, value: value.to_string() },
    }
}

/// Loads a CSV to train on, with a split column (the task's checks, such as [`training_data`] for
/// classes, come after: a regression's label column holds reals).
pub fn load_training_csv(
    path: &Path,
    label: &LabelColumn,
    header: Header,
    split_column: Option<&str>,
    on_bytes: &mut dyn FnMut(u64, u64),
) -> Result<Dataset, DataError> {
    load_csv_reporting(path, label, header, split_column, on_bytes)
}

/// The user's own split in files: `train` rows, then `val` and `test` rows from files with the
/// same columns, as one data set whose rows carry their part.
pub fn join_parts(train: Dataset, val: Dataset, test: Dataset) -> Result<Dataset, anyhow::Error> {
    let mut joined = train;
    joined.parts = vec![Part::Train; joined.rows()];
    for (other, part) in [(val, Part::Val), (test, Part::Test)] {
        if other.feature_names != joined.feature_names || other.label_name != joined.label_name {
            anyhow::bail!(
                "{}: columns {} and label `{}` differ from {}'s ({} and `{}`)",
                other.source.display(),
                other.feature_names.join(", "),
                other.label_name,
                joined.source.display(),
                joined.feature_names.join(", "),
                joined.label_name
            );
        }
        joined.parts.extend(std::iter::repeat_n(part, other.rows()));
        joined.other_sources.push(other.source);
        joined.features.extend(other.features);
        joined.labels.extend(other.labels);
        joined.targets.extend(other.targets);
        joined.classes = joined.classes.max(other.classes);
        joined.label_issue = joined.label_issue.or(other.label_issue);
        if joined.label_issue.is_some() {
            joined.labels.clear();
            joined.classes = 0;
        }
    }
    Ok(joined)
}

/// Checks that loaded data can be trained as classes: every label is a class, and there are at
/// least two.
pub fn training_data(data: Dataset) -> Result<Dataset, DataError> {
    if let Some((line, value)) = &data.label_issue {
        return Err(class_label_error(&data, *line, value));
    }
    let distinct = data.labels.iter().collect::<std::collections::BTreeSet<_>>().len();
    if distinct < 2 {
        return Err(DataError::TooFewClasses { path: data.source, column: data.label_name, found: distinct });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, label: LabelColumn) -> Result<Dataset, DataError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        std::fs::write(&path, text).unwrap();
        training_data(load_training_csv(&path, &label, Header::Auto, None, &mut |_, _| {})?)
    }

    fn message(text: &str) -> String {
        load(text, LabelColumn::Last).unwrap_err().to_string()
    }

    #[test]
    fn the_digits_fast_path_reads_what_the_general_parser_reads() {
        let mut cases: Vec<String> = (0..200_000u32).map(|n| n.to_string()).collect();
        cases.extend(
            [
                "0", "00", "0042", "9999999", "10000000", "16777217", "99999999", "", "1.5", "-3", "+7", "1e3", "0x1",
                " 4", "nan", "١٢",
            ]
            .map(String::from),
        );
        cases.extend((0..1000u32).map(|n| format!("{:07}", n * 9973)));
        for case in &cases {
            let general = std::str::from_utf8(case.as_bytes()).ok().and_then(|t| t.parse::<f32>().ok());
            assert_eq!(number(case.as_bytes()).map(f32::to_bits), general.map(f32::to_bits), "{case:?}");
        }
    }

    #[test]
    fn a_gzip_compressed_csv_reads_as_the_csv_and_a_corrupt_one_is_an_error_naming_it() {
        use std::io::Write;
        let text = "a,b,label\n1,2,0\n3,4,1\n5,6,0\n";
        let dir = tempfile::tempdir().unwrap();
        let (plain, packed) = (dir.path().join("d.csv"), dir.path().join("d.csv.gz"));
        std::fs::write(&plain, text).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let bytes = gz.finish().unwrap();
        std::fs::write(&packed, &bytes).unwrap();
        let (a, b) =
            (load_csv(&plain, &LabelColumn::Last, Header::Auto), load_csv(&packed, &LabelColumn::Last, Header::Auto));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.features, a.labels), (b.features, b.labels));
        assert_eq!(load_csv_for_model(&packed, 2, None, Header::Auto).unwrap().labels, vec![0, 1, 0]);
        std::fs::write(&packed, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_csv(&packed, &LabelColumn::Last, Header::Auto).unwrap_err().to_string();
        assert!(e.contains("d.csv.gz"), "{e}");
    }

    #[test]
    fn loads_features_and_labels_with_the_label_anywhere() {
        let d = load("a,b,label\n1,2,0\n3,4,1\n", LabelColumn::Last).unwrap();
        assert_eq!((d.rows(), d.width(), d.classes), (2, 2, 2));
        assert_eq!(d.features, vec![1.0, 2.0, 3.0, 4.0]);
        let d = load("a,b,label\n1,2,0.0\n3,4,2.0\n", LabelColumn::Last).unwrap();
        assert_eq!((d.labels.clone(), d.classes), (vec![0, 2], 3), "integral floats are labels");
        let d = load("y,a,b\n1,5,6\n0,7,8\n", LabelColumn::Named("y".into())).unwrap();
        assert_eq!(d.labels, vec![1, 0]);
        assert_eq!(d.row(1), &[7.0, 8.0]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        let d = load_csv(&path, &LabelColumn::None, Header::Auto).unwrap();
        assert_eq!(d.row(0), &[1.0, 2.0]);
        assert!(d.labels.is_empty());
        // prediction input may hold one class only; training input may not
        std::fs::write(&path, "a,label\n1,3\n2,3\n").unwrap();
        assert_eq!(load_csv(&path, &LabelColumn::Last, Header::Auto).unwrap().labels, vec![3, 3]);
    }

    #[test]
    fn a_first_row_of_numbers_is_data_unless_told_otherwise() {
        let rows = "1,2,0\n3,4,1\n5,6,0\n";
        let d = load(rows, LabelColumn::Last).unwrap();
        assert_eq!((d.rows(), d.header), (3, Header::Absent), "no row is lost");
        assert_eq!(d.feature_names, vec!["column 1", "column 2"]);
        assert_eq!(d.label_name, "column 3");
        let as_named =
            parse_csv(rows.as_bytes(), Path::new("r.csv"), &LabelColumn::Last, Header::Present, None).unwrap();
        assert_eq!((as_named.rows(), as_named.feature_names.clone()), (2, vec!["1".to_string(), "2".to_string()]));
        let named = "a,b,label\n1,2,0\n3,4,1\n";
        let d = parse_csv(named.as_bytes(), Path::new("n.csv"), &LabelColumn::Last, Header::Auto, None).unwrap();
        assert_eq!((d.rows(), d.header), (2, Header::Present));
        let e = parse_csv(named.as_bytes(), Path::new("n.csv"), &LabelColumn::Last, Header::Absent, None).unwrap_err();
        assert!(e.to_string().contains("n.csv, line 1, column `column 1`: `a` is not a number"), "{e}");
    }

    #[test]
    fn bad_input_names_file_line_and_column() {
        assert!(message("").contains("empty"));
        assert!(message("a,b,label\n").contains("only a header"));
        let m = message("a,b,label\n1,2,0\n1,2\n");
        assert!(m.contains("line 3") && m.contains("2 fields"), "{m}");
        let m = message("a,b,label\n1,x,0\n");
        assert!(m.contains("line 2") && m.contains("column `b`") && m.contains("`x`"), "{m}");
        let m = message("a,b,label\n1,NaN,0\n");
        assert!(m.contains("not finite") && m.contains("column `b`"), "{m}");
        assert!(message("a,b,label\n1,inf,0\n").contains("not finite"));
        let m = message("a,b,label\n1,2,-1\n");
        assert!(m.contains("non-negative integer") && m.contains("column `label`"), "{m}");
        assert!(message("a,b,label\n1,2,1.5\n").contains("non-negative integer"));
        let m = message("a,b,label\n1,2,2000000000\n");
        assert!(m.contains("label 2000000000 is above the limit 4095") && m.contains("line 2"), "{m}");
        let m = message("a,a,label\n1,2,0\n");
        assert!(m.contains("`a` appears twice (columns 1 and 2)"), "{m}");
        assert!(message("a,b,label\n1,2,3\n4,5,3\n").contains("at least two"));
        let m = load("a,b\n1,2\n", LabelColumn::Named("y".into())).unwrap_err().to_string();
        assert!(m.contains("no label column named `y`"), "{m}");
        let e = load_csv(Path::new("/nonexistent/x.csv"), &LabelColumn::Last, Header::Auto).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.csv"));
    }
}
