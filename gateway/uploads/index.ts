// Resumable uploads (tus 1.0) for the gateway: the routes at /uploads, the upload
// documents they keep in MongoDB, and the sweeper that removes expired ones.
//   gateway.ts:  const uploads = resumableUploads({...}); app.use(uploads.routes); start → uploads.start()
import type { Db } from "mongodb";
import { type UploadRoutesDeps, uploadRoutes } from "./routes.ts";
import { uploadStore } from "./store.ts";
import { uploadSweeper } from "./sweeper.ts";

export function resumableUploads(deps: Omit<UploadRoutesDeps, "uploads"> & { db: Db }) {
  const uploads = uploadStore(deps.db);
  const sweeper = uploadSweeper({ uploads, files: deps.files, jobs: deps.jobs, log: deps.log });
  return {
    routes: uploadRoutes({ ...deps, uploads }),
    uploads,
    sweeper,
    /** Indexes (GridFS's own too: an upload's chunks may be the bucket's first), then the sweeper. */
    async start(): Promise<void> {
      await uploads.ensureIndexes();
      await deps.files.ensureIndexes("videos");
      sweeper.start();
    },
    stop: () => sweeper.stop(),
  };
}

export type ResumableUploads = ReturnType<typeof resumableUploads>;
