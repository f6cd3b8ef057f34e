// Drives packages/sync's CallTimeline (the engine's per-call state) with given agent and user
// units, the way the engine does when every user chunk arrives on time and the model's
// prediction of the user is "nothing": at tick n the real user chunk n-1 is submitted, the tick
// begins (the real chunk replaces the prediction), the agent's chunk n+1 is accepted unit by unit
// and closed with a tag. Prints the final token history (JSON) after user chunk N-1 is applied.
// Input on stdin: {"unitCount", "chunkMs", "agent": [raw units], "user": [raw units]}.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [syncDist] = process.argv.slice(2);
const sync = await import(pathToFileURL(`${syncDist}/index.js`).href);
const input = JSON.parse(readFileSync(0, 'utf8'));
const { unitCount, chunkMs, agent, user } = input;
const vocab = sync.createVocabulary({
  unitBase: 0,
  unitCount,
  s0: unitCount,
  s1: unitCount + 1,
  vocabSize: unitCount + 2,
});
const geometry = sync.chunkGeometry(chunkMs);
const U = geometry.unitsPerChunk;
const tl = new sync.CallTimeline({ vocabulary: vocab, geometry, firstChunk: 0, maxLateChunks: 2 });
const N = Math.floor(user.length / U);
let prevAgent;
for (let n = 0; n < N; n++) {
  if (n > 0) tl.submitUserChunk(n - 1, user.slice((n - 1) * U, n * U));
  tl.beginTick();
  tl.accept(vocab.s0); // predicted user chunk n: nothing
  const raw = agent.slice((n + 1) * U, (n + 2) * U);
  const units = sync.dedupChunk(raw, prevAgent);
  let done = false;
  for (const u of units) done = tl.accept(sync.unitToken(vocab, u)).done;
  if (!done) tl.accept(vocab.s1); // a tag closes a short agent chunk
  if (units.length > 0) prevAgent = units[units.length - 1];
  tl.endTick();
}
tl.submitUserChunk(N - 1, user.slice((N - 1) * U, N * U));
tl.beginTick();
const h = tl.history();
process.stdout.write(JSON.stringify({ base: h.base, tokens: h.tokens }));
