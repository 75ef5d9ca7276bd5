/**
 * Prisma CLI configuration (Prisma 7). Only `prisma generate` is used: migrations are plain SQL files
 * applied by src/store/migrate.ts (`apix migrate`), which runs on PostgreSQL and embedded PGlite alike.
 */
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  ...(process.env.DATABASE_URL ? { datasource: { url: process.env.DATABASE_URL } } : {}),
});
