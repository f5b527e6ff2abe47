//! The `parked` table in Postgres: changes of a paused pair, kept in
//! arrival order (`id`) until the pair resumes and they are applied; and
//! the operator's view of them (`tandem status`).

use super::{PgPipelineState, PgState};
use crate::state::ParkedCount;
use crate::Result;
use tokio_postgres::Client;

impl PgState {
    /// Names of the pairs with parked changes of this direction.
    pub async fn parked_pairs(&self, client: &Client) -> Result<Vec<String>> {
        let sql = format!("SELECT DISTINCT pair FROM {} WHERE pipeline = $1 AND direction = $2", self.table("parked"));
        let rows = client.query(&sql, &[&self.pipeline, &self.direction]).await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>()?)
    }

    /// Parks changes (pair name, change JSON), in order, in the open transaction.
    pub async fn park(&self, client: &Client, pairs: &[String], changes: &[String], reason: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (pipeline, direction, pair, reason, change_json)
             SELECT $1, $2, p, $3, c FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS t(p, c, n) ORDER BY n",
            self.table("parked")
        );
        client.execute(&sql, &[&self.pipeline, &self.direction, &reason, &pairs, &changes]).await?;
        Ok(())
    }

    /// The oldest `limit` parked changes of `pair`: (id, change JSON).
    pub async fn parked(&self, client: &Client, pair: &str, limit: usize) -> Result<Vec<(i64, String)>> {
        let sql = format!(
            "SELECT id, change_json FROM {} WHERE pipeline = $1 AND direction = $2 AND pair = $3 ORDER BY id LIMIT {limit}",
            self.table("parked")
        );
        let rows = client.query(&sql, &[&self.pipeline, &self.direction, &pair]).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Deletes parked changes by id, in the open transaction.
    pub async fn unpark(&self, client: &Client, ids: &[i64]) -> Result<()> {
        client.execute(&format!("DELETE FROM {} WHERE id = ANY($1::int8[])", self.table("parked")), &[&ids]).await?;
        Ok(())
    }
}

impl PgPipelineState {
    /// The pipeline's parked changes counted by direction and pair, in that order.
    pub async fn parked_by_pair(&self, client: &Client) -> Result<Vec<ParkedCount>> {
        let sql = format!("SELECT direction, pair, count(*), max(reason) FROM {} WHERE pipeline = $1 GROUP BY 1, 2 ORDER BY 1, 2", self.table("parked"));
        let mut out = Vec::new();
        for row in client.query(&sql, &[&self.pipeline]).await? {
            out.push(ParkedCount { direction: row.try_get(0)?, pair: row.try_get(1)?, changes: row.try_get(2)?, reason: row.try_get(3)? });
        }
        Ok(out)
    }
}
