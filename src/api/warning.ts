export type WarningSeverity = "low" | "moderate" | "high";
export type WarningStatus = "new" | "acknowledged" | "resolved";

/** Wire shape of a warning (reference: definitions/Warning). */
export interface Warning {
  uuid: string;
  location: string;
  project: string;
  type: string;
  count: number;
  first_seen_at: string;
  last_seen_at: string;
  last_message: string;
  severity: WarningSeverity;
  status: WarningStatus;
  entity_url: string;
}

export interface WarningPut {
  status: WarningStatus;
}
