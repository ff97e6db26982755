// The nbops server extension's REST API (`/nbops/api/...`), authenticated by Jupyter's token.

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IApiErrorBody {
  message: string;
  fix?: string | null;
  kind?: string | null;
  cell_index?: number | null;
  cell_id?: string | null;
}

/** An error answer of the API (or a failed request), with the server's message and fix. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: IApiErrorBody
  ) {
    super(body.message);
  }
}

export interface IAnalysisCell {
  index: number;
  id: string | null;
  type: string;
  role: string | null;
  tag: string | null;
}

export interface IParameter {
  name: string;
  type: string;
  default: unknown;
  description?: string | null;
  secret?: boolean;
}

export interface IStepInput {
  name: string;
  source?: string | null;
  step?: string | null;
}

export interface IStep {
  key: string;
  role: string;
  cells: { index: number; id: string | null }[];
  inputs: (IStepInput | string)[];
  outputs: (IStepInput | string)[];
}

/** A cell by index (from 0) and id. */
export interface ICellRef {
  cell_index?: number | null;
  cell_id?: string | null;
}

export interface IProblem {
  kind?: string | null;
  message: string;
  fix?: string | null;
  cell_index?: number | null;
  cell_id?: string | null;
  exit_code?: number | null;
  /** The other cells the problem concerns: the cell defining a name the problem's cell uses. */
  related?: ICellRef[];
  /** A one-click fix (labserver/fixes.py), when the problem has a mechanical one. */
  quick_fix?: IQuickFix | null;
}

/** A one-click fix the server checked (labserver/fixes.py); fixes.ts applies it to the
 * open notebook. `kind`: tag-cell, merge-parameters, move-to-parameters, suggest-roles. */
export interface IQuickFix {
  kind: string;
  label: string;
  message?: string;
  cell_index?: number;
  cell_id?: string | null;
  tag?: string;
  current?: string | null;
  from_index?: number;
  from_id?: string | null;
  name?: string;
  line?: number;
  end_line?: number;
  source?: string;
  parameters_index?: number;
  parameters_id?: string | null;
}

/** One code cell of `nbops tag --suggest --json` (GET /nbops/api/suggest). */
export interface ISuggestedCell {
  index: number;
  number: number;
  id: string | null;
  tag: string | null;
  role: string | null;
  reason: string;
  kept: boolean;
  current: string | null;
  changes: boolean;
}

export interface ISuggestion {
  notebook: string;
  exports: boolean;
  cells: ISuggestedCell[];
  problems: { message: string; kind: string; fix?: string | null; index?: number | null }[];
  steps: string[];
  warnings: string[];
}

export interface IWarning {
  message: string;
  cell_index?: number | null;
  cell_id?: string | null;
}

/** Set when the notebook is a run's output (papermill's executed copy): the run, and the
 * source notebook the run ran (relative to the server root; null when unknown). */
export interface IRunOutput {
  run_id: string | null;
  source: string | null;
}

export interface IAnalysis {
  path: string;
  cells: IAnalysisCell[];
  parameters: IParameter[];
  steps: IStep[];
  problems: IProblem[];
  warnings: IWarning[];
  tagged: boolean;
  run_output?: IRunOutput | null;
  /** The saved file's sha256 (an export's manifest records its source's). */
  sha256?: string | null;
  /** One-click fixes not tied to a problem (moves of constants into the parameters cell). */
  fixes?: IQuickFix[];
  /** The notebook's export in its project's export folder; `current`: made from the
   * notebook as saved now. */
  last_export?: ILastExport | null;
}

export interface ILastExport {
  name: string;
  version: number;
  folder: string;
  source_sha256: string;
  current: boolean;
}

export interface IExportResult {
  name: string;
  version: string | number;
  content_hash: string;
  /** The sha256 of the notebook file the export read. */
  source_sha256?: string;
  folder: string;
  new_version: boolean;
  steps: unknown[];
  warnings: (IWarning | string)[];
}

/** One code cell of a finished run: its step tag (`role`), duration and outcome. */
export interface IRunCell {
  index: number;
  id: string;
  role: string | null;
  duration_s: number | null;
  status: string;
}

export interface IRunJob {
  job: string;
  status: string;
  run_id?: string | null;
  metrics?: Record<string, unknown> | null;
  output_notebook?: string | null;
  error?: IApiErrorBody | string | null;
  cells?: IRunCell[] | null;
  // The run form's (labserver/progress.py): progress cell by cell, and once it ended the
  // gate verdicts, the model, why no bundle, the run's warnings.
  progress?: IRunProgress | null;
  gates?: IRunGates | null;
  has_model?: boolean | null;
  bundle_blocked?: string | null;
  warnings?: string[];
}

/** A cell of a run's plan: `position` counts the cells the run executes, from 1. */
export interface IProgressCell {
  index: number;
  position: number;
  step: string | null;
}

export interface IRunProgress {
  total: number;
  done: number;
  current: IProgressCell | null;
  failed: IProgressCell | null;
  cells: { index: number; step: string | null; status: string }[];
  steps: { step: string; cells: number; done: number; status: string }[];
}

/** `source`: the run's own verdicts (record), the project's gates checked (config), none. */
export interface IRunGates {
  source: 'record' | 'config' | 'none';
  gates: { gate: string; passed: boolean; reason?: string | null }[];
  error: IApiErrorBody | null;
}

export interface IBundleResult {
  folder: string;
  existing?: boolean; // the bundle built before from the same run (no new version)
}

export async function requestAPI<T>(
  endpoint: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'nbops', 'api', endpoint);
  if (init.body && !init.headers) {
    init.headers = { 'Content-Type': 'application/json' };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(0, { message: `cannot reach the Jupyter server (${error})` });
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    if (data && typeof data.error === 'object' && data.error) {
      throw new ApiError(response.status, data.error as IApiErrorBody);
    }
    if (response.status === 404 && !data) {
      throw new ApiError(404, {
        message: 'the nbops server extension is not running in this Jupyter server',
        fix: 'install nbops in the environment that runs JupyterLab and restart it (jupyter server extension list should show nbops)'
      });
    }
    const message =
      (data && (data.message || data.reason || (typeof data.error === 'string' && data.error))) ||
      `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, { message: String(message) });
  }
  return data as T;
}

export const api = {
  vocabulary: () => requestAPI<unknown>('vocabulary'),
  analysis: (path: string) =>
    requestAPI<IAnalysis>(`analysis?path=${encodeURIComponent(path)}`),
  parameters: (path: string) =>
    requestAPI<{ parameters: IParameter[] }>(`parameters?path=${encodeURIComponent(path)}`),
  startRun: (path: string, parameters: Record<string, unknown>) =>
    requestAPI<{ job: string }>('runs', {
      method: 'POST',
      body: JSON.stringify({ path, parameters })
    }),
  run: (job: string) => requestAPI<IRunJob>(`runs/${encodeURIComponent(job)}`),
  suggest: (path: string) =>
    requestAPI<ISuggestion>(`suggest?path=${encodeURIComponent(path)}`),
  bundle: (runId: string, path: string) =>
    requestAPI<IBundleResult>('bundle', {
      method: 'POST',
      body: JSON.stringify({ run_id: runId, path })
    })
};
