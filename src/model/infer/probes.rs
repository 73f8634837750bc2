//! One plain coercer per type guess, so that a proposed type accepts exactly what imports
//! accept.

use crate::model::coerce::ColumnCoercer;
use crate::model::{ColumnSpec, ColumnType, Identifier};

/// The coercers inference tries cells with, built once per inference.
#[derive(Debug)]
pub struct Probes {
    pub integer: ColumnCoercer,
    pub float: ColumnCoercer,
    pub decimal: ColumnCoercer,
    pub boolean: ColumnCoercer,
    pub date: ColumnCoercer,
    pub datetime: ColumnCoercer,
    pub uuid: ColumnCoercer,
    pub email: ColumnCoercer,
    pub url: ColumnCoercer,
}

impl Probes {
    /// Coercers of every guessable type, without constraints.
    pub fn new() -> Probes {
        Probes {
            integer: probe(ColumnType::Integer, None),
            float: probe(ColumnType::Float, None),
            decimal: probe(ColumnType::Decimal, None),
            boolean: probe(ColumnType::Boolean, None),
            date: probe(ColumnType::Date, None),
            datetime: probe(ColumnType::Datetime, None),
            uuid: probe(ColumnType::Uuid, None),
            email: probe(ColumnType::Email, None),
            url: probe(ColumnType::Url, None),
        }
    }
}

/// A coercer for a column of a type with no constraints (and the given enum values).
pub fn probe(ty: ColumnType, values: Option<Vec<String>>) -> ColumnCoercer {
    let spec = ColumnSpec {
        name: Identifier::parse("column", "sample").expect("\"sample\" is a valid name"),
        ty,
        required: false,
        unique: false,
        default: None,
        max_length: None,
        min_length: None,
        min: None,
        max: None,
        pattern: None,
        values,
    };
    // Without pattern or default only an enum without values can fail, which callers avoid.
    ColumnCoercer::new(&spec).expect("a column without constraints compiles")
}
