/**
 * An exclusive lock file holding our pid, for what one process at a time may own in the data dir (the
 * embedded database, the state log); a lock left by a dead process is taken over.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';

export class DataDirInUseError extends Error {
  override name = 'DataDirInUseError';
}

/** Takes `path` for this process; `what` names the owned thing in errors. Returns the release. */
export function acquireDirLock(path: string, what: string, hint: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid))
        throw new DataDirInUseError(`${what} is in use by process ${pid}; ${hint}`);
      if (pid === process.pid) throw new DataDirInUseError(`${what} is already open`);
      rmSync(path, { force: true });
    }
  }
  throw new DataDirInUseError(`could not lock ${path}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
