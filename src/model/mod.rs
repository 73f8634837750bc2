//! Plain domain types and rules: schemas, typed values, coercion, imports, keys. No I/O.

pub mod coerce;
pub mod import;
pub mod infer;
pub mod key;
pub mod lifecycle;
pub mod row_error;
pub mod schema;
pub mod text_record;
pub mod value;

pub use import::{Counts, ImportStatus, Mode, OnError, Source, Step};
pub use key::Role;
pub use lifecycle::{CancelAction, Forget, Lifecycle, NotRollbackable, Refusal, RollbackAction};
pub use row_error::{RowError, RowErrorCode};
pub use schema::{ColumnSpec, ColumnType, Identifier, SchemaError, TableSchema};
pub use text_record::TextRecord;
pub use value::Value;
