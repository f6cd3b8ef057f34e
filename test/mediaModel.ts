import { ensureTinyModel, UNTRAINED_DIALOGUE_MODEL } from '@duet/engine/tiny';

/**
 * The dialogue model the media-path tests run: the untrained one, which speaks units on every
 * chunk. The trained default listens and answers only at turn ends (about a third of them,
 * docs/EVAL.md), so "the agent's audio reaches the caller" would hang on its timing; its
 * behaviour is measured by `duet eval` / `pnpm bench:eval` instead.
 */
export async function mediaTestModel(): Promise<string> {
  return (await ensureTinyModel(UNTRAINED_DIALOGUE_MODEL, { quiet: true })).manifestPath;
}
