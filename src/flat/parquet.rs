//! Writing a [`Table`](super::Table)'s rows as Parquet, with the `parquet`
//! crate's column writers (no Arrow: the rows are already columns of
//! three kinds). Every column is OPTIONAL (a null is a missing value);
//! strings are UTF-8, timestamps milliseconds since the epoch in UTC.
//! Rows go out a row group at a time, so a caller streaming a large log
//! holds one group in memory, not the file.

use super::{Cell, Column, Kind};
use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use std::io::Write;
use std::sync::Arc;

/// Rows per row group when a caller streams (64 Ki rows: a few MB).
pub const ROWS_PER_GROUP: usize = 65_536;

pub struct ParquetWriter<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    columns: Vec<Column>,
}

impl<W: Write + Send> ParquetWriter<W> {
    pub fn new(out: W, columns: Vec<Column>) -> Result<Self, ParquetError> {
        let fields = columns
            .iter()
            .map(|c| {
                let (physical, logical) = match c.kind {
                    Kind::Int => (Physical::INT64, None),
                    Kind::Float => (Physical::DOUBLE, None),
                    Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
                    Kind::Timestamp => (
                        Physical::INT64,
                        Some(LogicalType::timestamp(
                            true,
                            parquet::basic::TimeUnit::MILLIS,
                        )),
                    ),
                };
                Type::primitive_type_builder(&c.name, physical)
                    .with_repetition(Repetition::OPTIONAL)
                    .with_logical_type(logical)
                    .build()
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let schema = Type::group_type_builder("leadflow")
            .with_fields(fields)
            .build()?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("leadflow {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(props))?;
        Ok(ParquetWriter { writer, columns })
    }

    /// Writes `rows` (each in column order) as one row group.
    pub fn write_group(&mut self, rows: &[Vec<Cell>]) -> Result<(), ParquetError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut col) = group.next_column()? {
            let kind = self.columns[index].kind;
            let cells = rows.iter().map(|r| &r[index]);
            let defs: Vec<i16> = cells.clone().map(|c| i16::from(*c != Cell::Null)).collect();
            match kind {
                Kind::Int | Kind::Timestamp => {
                    let values: Vec<i64> = cells
                        .filter_map(|c| match c {
                            Cell::Int(i) => Some(*i),
                            Cell::Float(f) => Some(*f as i64),
                            _ => None,
                        })
                        .collect();
                    col.typed::<Int64Type>()
                        .write_batch(&values, Some(&defs), None)?;
                }
                Kind::Float => {
                    let values: Vec<f64> = cells
                        .filter_map(|c| match c {
                            Cell::Int(i) => Some(*i as f64),
                            Cell::Float(f) => Some(*f),
                            _ => None,
                        })
                        .collect();
                    col.typed::<DoubleType>()
                        .write_batch(&values, Some(&defs), None)?;
                }
                Kind::Text => {
                    let values: Vec<ByteArray> = cells
                        .filter(|c| **c != Cell::Null)
                        .map(|c| ByteArray::from(c.to_text().into_bytes()))
                        .collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&values, Some(&defs), None)?;
                }
            }
            col.close()?;
            index += 1;
        }
        group.close()?;
        Ok(())
    }

    /// Writes the footer; returns the output.
    pub fn finish(self) -> Result<W, ParquetError> {
        self.writer.into_inner()
    }
}
