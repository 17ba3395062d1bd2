//! Reading closed sets of names (enums built with `formats::named_enum!`) from text columns.
//! A non-null column uses `#[diesel(deserialize_as = String)]` and the enum's
//! `TryFrom<String>`; a nullable one uses [`NullableName`].

use std::str::FromStr;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::sql_types::{Nullable, Text};

/// A nullable text column read as `Option<T>`: `#[diesel(deserialize_as = NullableName<T>)]`
/// on a field of type `Option<T>`. A name outside the set is a deserialization error.
pub struct NullableName<T>(Option<T>);

impl<T> From<NullableName<T>> for Option<T> {
    fn from(name: NullableName<T>) -> Option<T> {
        name.0
    }
}

impl<T, DB> Queryable<Nullable<Text>, DB> for NullableName<T>
where
    DB: Backend,
    String: FromSql<Text, DB>,
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    type Row = Option<String>;

    fn build(row: Option<String>) -> deserialize::Result<Self> {
        Ok(NullableName(row.map(|text| text.parse()).transpose()?))
    }
}
