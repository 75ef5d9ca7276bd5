-- Webhooks (issue 17): endpoints, and the batches waiting for delivery or given up on (dead letters),
-- so that delivery state survives a restart of an embedded node (PGlite) or of nodes sharing PostgreSQL.

CREATE TABLE "ApiXWebhookEndpoint" (
    "id" TEXT NOT NULL,
    "organizationId" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "events" TEXT[],
    "secret" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ApiXWebhookEndpoint_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "ApiXWebhookEndpoint_organizationId_idx" ON "ApiXWebhookEndpoint"("organizationId");

CREATE TABLE "ApiXWebhookBatch" (
    "id" TEXT NOT NULL,
    "organizationId" TEXT NOT NULL,
    "endpointId" TEXT NOT NULL,
    "events" JSONB NOT NULL,
    "attempts" INTEGER NOT NULL,
    "lastError" TEXT,
    "dueAt" TIMESTAMP(3) NOT NULL,
    "deadAt" TIMESTAMP(3),

    CONSTRAINT "ApiXWebhookBatch_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "ApiXWebhookBatch_deadAt_dueAt_idx" ON "ApiXWebhookBatch"("deadAt", "dueAt");

CREATE INDEX "ApiXWebhookBatch_organizationId_deadAt_idx" ON "ApiXWebhookBatch"("organizationId", "deadAt");
