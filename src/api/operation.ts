export type OperationClass = "task" | "websocket" | "token";

/** Wire shape of an operation (reference: definitions/Operation). */
export interface Operation {
  id: string;
  class: OperationClass;
  description: string;
  created_at: string;
  updated_at: string;
  status: string;
  status_code: number;
  resources: Record<string, string[]> | null;
  metadata: Record<string, unknown> | null;
  may_cancel: boolean;
  err: string;
  location: string;
}
