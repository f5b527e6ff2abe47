//! The MySQL/MariaDB account's privileges, read from `SHOW GRANTS` lines.
//!
//! Understands global (`*.*`), database (`db.*`, with the `_`/`%` wildcards
//! of database-level grants) and table (`db.tbl`) grants; `ALL PRIVILEGES`
//! at a level covers every privilege of that level. Column-level grants
//! (`SELECT (a)`) do not count as table privileges; routine and proxy grants
//! are ignored; granted roles are remembered but not expanded (SHOW GRANTS
//! does not list a role's privileges). The lines may carry password hashes:
//! nothing here keeps or prints them.

/// One `GRANT … ON target` line's target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Global,
    /// Database name pattern as granted (may hold `_`/`%` wildcards, `\` escapes).
    Db(String),
    Table(String, String),
    /// Routines, proxies: irrelevant here.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    /// Upper-case privilege names; `ALL` for ALL [PRIVILEGES].
    privileges: Vec<String>,
    target: Target,
}

/// The privileges of the current account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    grants: Vec<Grant>,
    /// Roles granted to the account (`GRANT role TO user`).
    pub roles: Vec<String>,
}

impl Grants {
    /// Parses the rows of `SHOW GRANTS`.
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> Grants {
        let mut out = Grants::default();
        for line in lines {
            let line = line.as_ref().trim();
            let Some(rest) = strip_prefix_ci(line, "GRANT ") else { continue };
            match split_top(rest, " ON ") {
                Some((privs, after)) => {
                    let target_text = split_top(after, " TO ").map(|(t, _)| t).unwrap_or(after);
                    let privileges = split_privileges(privs);
                    out.grants.push(Grant { privileges, target: parse_target(target_text.trim()) });
                }
                None => {
                    // GRANT `role`[, `role2`] TO `user`@`host`
                    if let Some((roles, _)) = split_top(rest, " TO ") {
                        out.roles.extend(split_commas(roles).into_iter().map(|r| r.trim().to_string()).filter(|r| !r.is_empty()));
                    }
                }
            }
        }
        out
    }

    /// Does the account hold `privilege` on `*.*`?
    pub fn global(&self, privilege: &str) -> bool {
        self.grants.iter().any(|g| g.target == Target::Global && holds(g, privilege))
    }

    /// Does the account hold `privilege` on every table of `db`?
    pub fn on_db(&self, privilege: &str, db: &str) -> bool {
        self.grants.iter().any(|g| {
            let applies = match &g.target {
                Target::Global => true,
                Target::Db(pattern) => db_matches(pattern, db),
                _ => false,
            };
            applies && holds(g, privilege)
        })
    }

    /// Does the account hold `privilege` on table `db.table`?
    pub fn on_table(&self, privilege: &str, db: &str, table: &str) -> bool {
        self.on_db(privilege, db)
            || self.grants.iter().any(|g| matches!(&g.target, Target::Table(d, t) if d == db && t == table) && holds(g, privilege))
    }
}

fn holds(g: &Grant, privilege: &str) -> bool {
    g.privileges.iter().any(|p| p == "ALL" || p.eq_ignore_ascii_case(privilege))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// Splits at the first `sep` (case-insensitive) outside quotes and parentheses.
fn split_top<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let bytes = s.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'`' | b'\'' | b'"' => quote = Some(b),
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ if depth == 0 && s.is_char_boundary(i) && strip_prefix_ci(&s[i..], sep).is_some() => {
                    return Some((&s[..i], &s[i + sep.len()..]));
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// Comma-separated items outside quotes and parentheses.
fn split_commas(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '`' | '\'' | '"' => quote = Some(c),
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            },
        }
    }
    out.push(&s[start..]);
    out
}

/// `SELECT, INSERT, REPLICATION SLAVE, SELECT (a)` → table-level names only.
fn split_privileges(s: &str) -> Vec<String> {
    split_commas(s)
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.contains('('))
        .map(|p| {
            let name = p.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_uppercase();
            if name == "ALL PRIVILEGES" { "ALL".to_string() } else { name }
        })
        .collect()
}

/// One identifier at the start of `s` (backquoted, quoted or bare) and the rest.
fn ident(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    let mut chars = s.char_indices();
    match chars.next()? {
        (_, q @ ('`' | '"' | '\'')) => {
            let mut name = String::new();
            let mut iter = s[1..].char_indices().peekable();
            while let Some((i, c)) = iter.next() {
                if c == q {
                    if iter.peek().map(|(_, n)| *n) == Some(q) {
                        name.push(q);
                        iter.next();
                        continue;
                    }
                    return Some((name, &s[1 + i + 1..]));
                }
                name.push(c);
            }
            None
        }
        (_, '*') => Some(("*".to_string(), &s[1..])),
        _ => {
            let end = s.find(|c: char| c == '.' || c.is_whitespace()).unwrap_or(s.len());
            Some((s[..end].to_string(), &s[end..]))
        }
    }
}

fn parse_target(t: &str) -> Target {
    let upper = t.to_ascii_uppercase();
    if ["PROCEDURE ", "FUNCTION ", "PACKAGE "].iter().any(|k| upper.starts_with(k)) {
        return Target::Other;
    }
    let t = strip_prefix_ci(t, "TABLE ").unwrap_or(t);
    let Some((db, rest)) = ident(t) else { return Target::Other };
    let Some(rest) = rest.trim_start().strip_prefix('.') else { return Target::Other };
    let Some((table, _)) = ident(rest) else { return Target::Other };
    match (db.as_str(), table.as_str()) {
        ("*", "*") => Target::Global,
        (_, "*") => Target::Db(db),
        _ => Target::Table(db, table),
    }
}

/// Database-level grant names are LIKE patterns: `_` one character, `%` any,
/// `\_`/`\%` literal.
fn db_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('%', rest)) => (0..=n.len()).any(|k| go(rest, &n[k..])),
            Some(('_', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some(('\\', rest)) if !rest.is_empty() => !n.is_empty() && n[0] == rest[0] && go(&rest[1..], &n[1..]),
            Some((c, rest)) => !n.is_empty() && n[0] == *c && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_least_privilege_mariadb_account() {
        let g = Grants::parse(&[
            "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `tandem`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'",
            "GRANT SELECT, INSERT, UPDATE, DELETE, DROP ON `app`.* TO `tandem`@`%`",
            "GRANT ALL PRIVILEGES ON `tandem`.* TO `tandem`@`%`",
            "GRANT SELECT ON `ap\\_%`.* TO `tandem`@`%`",
            "GRANT SELECT (`a`), INSERT ON `app2`.`x` TO `tandem`@`%`",
        ]);
        assert!(g.global("REPLICATION SLAVE"));
        assert!(g.global("BINLOG MONITOR"));
        assert!(!g.global("SELECT"));
        assert!(g.on_table("DELETE", "app", "customers"));
        assert!(!g.on_table("CREATE", "app", "customers"));
        assert!(g.on_db("CREATE", "tandem"));
        assert!(g.on_table("SELECT", "ap_x", "t"));
        assert!(!g.on_table("SELECT", "apqx", "t"), "\\_ is a literal underscore");
        assert!(g.on_table("INSERT", "app2", "x"));
        assert!(!g.on_table("SELECT", "app2", "x"), "a column grant is not a table grant");
        assert!(!g.on_table("INSERT", "app2", "y"));
    }

    #[test]
    fn all_privileges_on_star_star_covers_everything() {
        let g = Grants::parse(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION", "GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION"]);
        assert!(g.global("REPLICATION SLAVE"));
        assert!(g.on_table("UPDATE", "any", "thing"));
        assert!(g.on_db("CREATE", "tandem"));
    }

    #[test]
    fn mysql8_lines_roles_and_wildcards() {
        let g = Grants::parse(&[
            "GRANT USAGE ON *.* TO `u`@`%`",
            "GRANT BACKUP_ADMIN,REPLICATION_SLAVE_ADMIN ON *.* TO `u`@`%`",
            "GRANT `app_rw`@`%`,`repl` TO `u`@`%`",
            "GRANT EXECUTE ON PROCEDURE `db`.`p` TO `u`@`%`",
            "GRANT SELECT ON `d%`.* TO `u`@`%`",
            "GRANT INSERT ON `we``ird`.`t.x` TO `u`@`%`",
        ]);
        assert!(!g.global("REPLICATION SLAVE"));
        assert!(g.global("REPLICATION_SLAVE_ADMIN"));
        assert_eq!(g.roles, vec!["`app_rw`@`%`".to_string(), "`repl`".to_string()]);
        assert!(g.on_table("SELECT", "data", "t"));
        assert!(!g.on_table("SELECT", "xd", "t"));
        assert!(g.on_table("INSERT", "we`ird", "t.x"));
    }
}
