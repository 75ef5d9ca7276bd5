-- Connection records are keyed like the gateway's sessions: by (organizationId, userId, sessionId).
-- A sessionId is the client's own choice ("tab-1"), so two organizations' users may share one; keyed by
-- sessionId alone, the second connect overwrote the first organization's row (issue 12, hole 9).
-- Existing rows are kept: their sessionIds were unique, so they are unique under the wider key too; a row
-- without a userId gets ''.

UPDATE "ApiXConnection" SET "userId" = '' WHERE "userId" IS NULL;

ALTER TABLE "ApiXConnection" ALTER COLUMN "userId" SET NOT NULL;

DROP INDEX "ApiXConnection_sessionId_key";

CREATE UNIQUE INDEX "ApiXConnection_organizationId_userId_sessionId_key" ON "ApiXConnection"("organizationId", "userId", "sessionId");
