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

export interface IProblem {
  kind?: string | null;
  message: string;
  fix?: string | null;
  cell_index?: number | null;
  cell_id?: string | null;
  exit_code?: number | null;
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
}

export interface IExportResult {
  name: string;
  version: string | number;
  content_hash: string;
  folder: string;
  new_version: boolean;
  steps: unknown[];
  warnings: (IWarning | string)[];
}

export interface IRunJob {
  job: string;
  status: string;
  run_id?: string | null;
  metrics?: Record<string, unknown> | null;
  output_notebook?: string | null;
  error?: IApiErrorBody | string | null;
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
  exportNotebook: (path: string) =>
    requestAPI<IExportResult>('export', { method: 'POST', body: JSON.stringify({ path }) }),
  parameters: (path: string) =>
    requestAPI<{ parameters: IParameter[] }>(`parameters?path=${encodeURIComponent(path)}`),
  startRun: (path: string, parameters: Record<string, unknown>) =>
    requestAPI<{ job: string }>('runs', {
      method: 'POST',
      body: JSON.stringify({ path, parameters })
    }),
  run: (job: string) => requestAPI<IRunJob>(`runs/${encodeURIComponent(job)}`),
  bundle: (runId: string, path: string) =>
    requestAPI<IBundleResult>('bundle', {
      method: 'POST',
      body: JSON.stringify({ run_id: runId, path })
    })
};
