//! Result and parameter encoding between Arrow values and PostgreSQL wire values: the types
//! columns are reported as, the rows of a result, and the parameters of a Bind.

mod arrays;
mod params;
mod rows;
mod types;

pub use params::decode_params;
pub use rows::{CellSink, encode_cell, encoded_rows, response};
pub use types::{field_infos, pg_type};
