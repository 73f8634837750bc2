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
            integer: probe(ColumnType::Integer),
            float: probe(ColumnType::Float),
            decimal: probe(ColumnType::Decimal),
            boolean: probe(ColumnType::Boolean),
            date: probe(ColumnType::Date),
            datetime: probe(ColumnType::Datetime),
            uuid: probe(ColumnType::Uuid),
            email: probe(ColumnType::Email),
            url: probe(ColumnType::Url),
        }
    }
}

/// A coercer for a column of a type with no constraints.
fn probe(ty: ColumnType) -> ColumnCoercer {
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
        values: None,
    };
    // Without pattern, default or enum values nothing can fail to compile.
    ColumnCoercer::new(&spec).expect("a column without constraints compiles")
}
