//! Statements with their arguments, built without a driver: the SQL of every backend is written
//! once with `$1`, `$2`... placeholders (PostgreSQL's form, which SQLite also reads) and run by a
//! [`super::Driver`].

use std::borrow::Cow;
use std::fmt::Write as _;

use super::Dialect;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Text.
    Text(String),
    /// A 64-bit integer (booleans are stored as 0 and 1).
    Int(i64),
    /// Nullable text.
    OptText(Option<String>),
    /// A nullable 64-bit integer.
    OptInt(Option<i64>),
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Self::OptText(v)
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Self::OptText(v.map(str::to_owned))
    }
}

impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Self::OptText(v.clone())
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Self::OptInt(v)
    }
}

/// SQL text with its arguments, numbered `$1`, `$2`... in the order they are bound. Static text
/// is kept borrowed, so a fixed statement costs no allocation for its SQL.
///
/// ```
/// use cs_core::sql::Stmt;
///
/// let mut q = Stmt::new("SELECT * FROM cs_messages WHERE tenant = $1").bind("shop");
/// q.push(" AND customer = ");
/// q.push_bind("c-1");
/// assert_eq!(q.sql(), "SELECT * FROM cs_messages WHERE tenant = $1 AND customer = $2");
/// assert_eq!(q.args().len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stmt {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

impl Stmt {
    /// A statement with fixed text; bind its `$n` arguments in order with [`Stmt::bind`].
    pub fn new(sql: &'static str) -> Self {
        Self {
            sql: Cow::Borrowed(sql),
            args: Vec::new(),
        }
    }

    /// A statement with text built at run time.
    pub fn dynamic(sql: impl Into<String>) -> Self {
        Self {
            sql: Cow::Owned(sql.into()),
            args: Vec::new(),
        }
    }

    /// Binds the next argument.
    pub fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Binds the next argument and appends its placeholder.
    pub fn push_bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.args.push(value.into());
        let n = self.args.len();
        let _ = write!(self.sql.to_mut(), "${n}");
        self
    }

    /// Appends `IN (...)` over `values`, bound as one JSON array whatever its length (the
    /// statement's text, and so the driver's prepared statement, does not depend on it).
    pub fn push_in<D: Dialect>(
        &mut self,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> &mut Self {
        let list: Vec<String> = values.into_iter().map(Into::into).collect();
        let json = serde_json::to_string(&list).expect("a list of strings encodes as JSON");
        self.args.push(Arg::Text(json));
        let subquery = D::json_list(self.args.len());
        let _ = write!(self.sql.to_mut(), "IN {subquery}");
        self
    }

    /// Appends `(p1, p2, ...)`: one placeholder for each value.
    pub fn push_values(&mut self, values: impl IntoIterator<Item = Arg>) -> &mut Self {
        self.push("(");
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(v);
        }
        self.push(")")
    }

    /// Appends `other` after this statement, renumbering its placeholders after this one's
    /// arguments, so both run as one call where the driver takes several statements at once.
    pub fn append(&mut self, other: Stmt) -> &mut Self {
        let base = self.args.len();
        let sql = self.sql.to_mut();
        if !sql.is_empty() && !sql.trim_end().ends_with(';') {
            sql.push_str(";\n");
        }
        renumber_into(sql, &other.sql, base);
        self.args.extend(other.args);
        self
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The arguments, in placeholder order.
    pub fn args(&self) -> &[Arg] {
        &self.args
    }

    /// Whether there is no SQL text.
    pub fn is_empty(&self) -> bool {
        self.sql.trim().is_empty()
    }

    /// The text and the arguments.
    pub fn into_parts(self) -> (Cow<'static, str>, Vec<Arg>) {
        (self.sql, self.args)
    }
}

/// Appends `sql` to `out` with every `$n` placeholder shifted by `base`.
fn renumber_into(out: &mut String, sql: &str, base: usize) {
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => {
                let _ = write!(out, "{}", n + base);
            }
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_statements_number_their_placeholders_after_the_first() {
        let mut a = Stmt::new("UPDATE t SET a = $1 WHERE id = $2")
            .bind(1_i64)
            .bind("x");
        a.append(
            Stmt::new("INSERT INTO u VALUES ($1, $12)")
                .bind(2_i64)
                .bind(3_i64),
        );
        assert_eq!(
            a.sql(),
            "UPDATE t SET a = $1 WHERE id = $2;\nINSERT INTO u VALUES ($3, $14)"
        );
        assert_eq!(a.args().len(), 4);
        let mut empty = Stmt::default();
        empty.append(Stmt::new("x = $1").bind(1_i64));
        assert_eq!(empty.sql(), "x = $1");
    }

    #[test]
    fn values_get_one_placeholder_each() {
        let mut s = Stmt::new("INSERT INTO t VALUES ");
        s.push_values([Arg::Int(1), Arg::OptText(None)]);
        assert_eq!(s.sql(), "INSERT INTO t VALUES ($1, $2)");
    }
}
