/**
 * The SDK from Node: one client watches an agent, another publishes its status.
 *
 *   npm start                                               # a gateway on :8080
 *   export APIX_TOKEN=$(npm run -s apix -- token --sub demo-agent --org acme --roles service)
 *   node --import tsx examples/sdk-node.ts
 */
import { WebSocket } from 'ws';
import { ApiXClient, isApiXError } from '../packages/sdk/src/index.ts';

const url = process.env.APIX_URL ?? 'ws://localhost:8080';
const token = process.env.APIX_TOKEN;
if (!token) {
  console.error('set APIX_TOKEN (npm run -s apix -- token --sub demo-agent --org acme --roles service)');
  process.exit(2);
}

const watcher = new ApiXClient({ url, token, clientType: 'API_CLIENT', WebSocket });
const worker = new ApiXClient({ url, token, clientType: 'INTERNAL_SERVICE', WebSocket });
for (const [name, client] of [
  ['watcher', watcher],
  ['worker', worker],
] as const) {
  client.on('reconnection.attempt', ({ attempt, delayMs }) =>
    console.log(`${name}: retry #${attempt} in ${delayMs} ms`),
  );
  client.on('error', (err) => console.warn(`${name}: ${err.code} ${err.message}`));
}

await Promise.all([watcher.connect(), worker.connect()]);
const agent = watcher.subscribe('agent:demo', { replay: { last: 5 } });
agent.on('agent_status_update', (event) => {
  console.log(`${event.id} agent ${event.payload.agentId} is ${event.payload.status}`);
});
const { recovered } = await agent.ready;
console.log(`subscribed to agent:demo (recovered: ${recovered})`);

for (const status of ['thinking', 'running', 'completed'] as const) {
  try {
    const { id, status: outcome } = await worker.publish('agent:demo', 'agent_status_update', {
      agentId: 'demo',
      status,
    });
    console.log(`published ${status} as ${id} (${outcome})`);
  } catch (err) {
    console.error(isApiXError(err) ? `publish refused: ${err.code} ${err.message}` : err);
  }
}

await new Promise((resolve) => setTimeout(resolve, 500));
await Promise.all([watcher.close(), worker.close()]);
