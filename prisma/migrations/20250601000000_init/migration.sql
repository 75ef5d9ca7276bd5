-- APIX initial schema (prisma/schema.prisma). Written in the form `prisma migrate diff` produces;
-- applied by src/store/migrate.ts, which records it in "_apix_migrations".

-- CreateEnum
CREATE TYPE "ClientType" AS ENUM ('WEB_APP', 'MOBILE_APP', 'SDK_WIDGET', 'API_CLIENT', 'INTERNAL_SERVICE');

-- CreateEnum
CREATE TYPE "ConnectionStatus" AS ENUM ('CONNECTED', 'DISCONNECTED', 'RECONNECTING', 'SUSPENDED');

-- CreateEnum
CREATE TYPE "ChannelType" AS ENUM ('AGENT_EVENTS', 'TOOL_EVENTS', 'WORKFLOW_EVENTS', 'PROVIDER_EVENTS', 'SYSTEM_EVENTS', 'PRIVATE_USER', 'ORGANIZATION', 'ROOM');

-- CreateTable
CREATE TABLE "ApiXConnection" (
    "id" TEXT NOT NULL,
    "organizationId" TEXT NOT NULL,
    "userId" TEXT,
    "sessionId" TEXT NOT NULL,
    "clientType" "ClientType" NOT NULL,
    "channels" TEXT[],
    "metadata" JSONB NOT NULL,
    "connectedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastHeartbeat" TIMESTAMP(3) NOT NULL,
    "status" "ConnectionStatus" NOT NULL,

    CONSTRAINT "ApiXConnection_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiXEvent" (
    "id" TEXT NOT NULL,
    "eventType" TEXT NOT NULL,
    "channel" TEXT NOT NULL,
    "payload" JSONB NOT NULL,
    "sessionId" TEXT,
    "acknowledgment" BOOLEAN NOT NULL DEFAULT false,
    "retryCount" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "metadata" JSONB,

    CONSTRAINT "ApiXEvent_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiXChannel" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "type" "ChannelType" NOT NULL,
    "organizationId" TEXT,
    "permissions" JSONB NOT NULL,
    "subscribers" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ApiXChannel_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Organization" (
    "id" TEXT NOT NULL,
    "name" TEXT,
    "suspendedAt" TIMESTAMP(3),
    "metadata" JSONB,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Organization_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiKey" (
    "id" TEXT NOT NULL,
    "organizationId" TEXT NOT NULL,
    "name" TEXT,
    "hash" TEXT NOT NULL,
    "scopes" TEXT[],
    "createdBy" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" TIMESTAMP(3),
    "revokedAt" TIMESTAMP(3),

    CONSTRAINT "ApiKey_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AuditLog" (
    "id" TEXT NOT NULL,
    "orgId" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "prevHash" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "actor" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "target" TEXT,
    "detail" JSONB NOT NULL,
    "remoteAddress" TEXT,
    "userAgent" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "AuditLog_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AuditChainHead" (
    "orgId" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "hash" TEXT NOT NULL,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "AuditChainHead_pkey" PRIMARY KEY ("orgId")
);

-- CreateTable
CREATE TABLE "ApiXDeadLetter" (
    "id" TEXT NOT NULL,
    "organizationId" TEXT NOT NULL,
    "channel" TEXT NOT NULL,
    "eventId" TEXT NOT NULL,
    "sessionId" TEXT NOT NULL,
    "eventType" TEXT,
    "payload" JSONB,
    "attempts" INTEGER NOT NULL,
    "reason" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ApiXDeadLetter_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ApiXConnection_sessionId_key" ON "ApiXConnection"("sessionId");

-- CreateIndex
CREATE INDEX "ApiXConnection_organizationId_status_idx" ON "ApiXConnection"("organizationId", "status");

-- CreateIndex
CREATE INDEX "ApiXConnection_status_lastHeartbeat_idx" ON "ApiXConnection"("status", "lastHeartbeat");

-- CreateIndex
CREATE INDEX "ApiXEvent_channel_createdAt_idx" ON "ApiXEvent"("channel", "createdAt");

-- CreateIndex
CREATE INDEX "ApiXEvent_sessionId_idx" ON "ApiXEvent"("sessionId");

-- CreateIndex
CREATE UNIQUE INDEX "ApiXChannel_name_key" ON "ApiXChannel"("name");

-- CreateIndex
CREATE INDEX "ApiXChannel_organizationId_type_idx" ON "ApiXChannel"("organizationId", "type");

-- CreateIndex
CREATE UNIQUE INDEX "ApiKey_hash_key" ON "ApiKey"("hash");

-- CreateIndex
CREATE INDEX "ApiKey_organizationId_revokedAt_idx" ON "ApiKey"("organizationId", "revokedAt");

-- CreateIndex
CREATE UNIQUE INDEX "AuditLog_orgId_seq_key" ON "AuditLog"("orgId", "seq");

-- CreateIndex
CREATE INDEX "AuditLog_orgId_createdAt_idx" ON "AuditLog"("orgId", "createdAt");

-- CreateIndex
CREATE INDEX "AuditLog_orgId_action_seq_idx" ON "AuditLog"("orgId", "action", "seq");

-- CreateIndex
CREATE INDEX "ApiXDeadLetter_organizationId_createdAt_idx" ON "ApiXDeadLetter"("organizationId", "createdAt");

-- CreateIndex
CREATE INDEX "ApiXDeadLetter_channel_eventId_idx" ON "ApiXDeadLetter"("channel", "eventId");

-- AddForeignKey
ALTER TABLE "ApiKey" ADD CONSTRAINT "ApiKey_organizationId_fkey" FOREIGN KEY ("organizationId") REFERENCES "Organization"("id") ON DELETE CASCADE ON UPDATE CASCADE;
