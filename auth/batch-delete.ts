// Deleting what has expired in batches: a statement per SWEEP_BATCH rows, so a sweep never
// holds a long lock on a table the logins and refreshes use.
import type { SQL } from "drizzle-orm";
import type { MySqlTable } from "drizzle-orm/mysql-core";
import type { MySql2Database } from "drizzle-orm/mysql2";

/** Rows deleted per statement. */
const SWEEP_BATCH = 5000;

/** Deletes every row of `table` that `where` accepts, a batch at a time; answers how many. */
export async function deleteInBatches(db: MySql2Database, table: MySqlTable, where: SQL | undefined): Promise<number> {
  let deleted = 0;
  for (;;) {
    const [result] = await db.delete(table).where(where).limit(SWEEP_BATCH);
    deleted += result.affectedRows;
    if (result.affectedRows < SWEEP_BATCH) return deleted;
  }
}
