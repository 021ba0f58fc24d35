/** Shapes of the SaaS fulfillment API v2 (api-version 2018-08-31), as Microsoft documents them. */

export const AZURE_API_VERSION = '2018-08-31'
/** The marketplace API's Entra resource id; v2 scope is `<id>/.default`. */
export const AZURE_MARKETPLACE_RESOURCE = '20e940b3-4c77-4b0b-9a53-9e16a1b010a7'

export interface AzureParty {
  emailId?: string | null
  objectId?: string | null
  tenantId?: string | null
  puid?: string | null
}

export interface AzureSubscription {
  id: string
  name?: string
  publisherId?: string
  offerId?: string
  planId?: string
  /** A number, or absent/empty when the plan is not per seat. */
  quantity?: number | string | null
  beneficiary?: AzureParty
  purchaser?: AzureParty
  /** Documented examples pad it with spaces (" Subscribed "): compare trimmed. */
  saasSubscriptionStatus?: string
  term?: { termUnit?: string | null; startDate?: string | null; endDate?: string | null }
  autoRenew?: boolean
  isTest?: boolean
  isFreeTrial?: boolean
  allowedCustomerOperations?: string[]
  sessionMode?: string
  sandboxType?: string
  created?: string
  lastModified?: string
}

export interface AzureResolveResponse {
  id: string
  subscriptionName?: string
  offerId?: string
  planId?: string
  /** A string in the documents ("20"), empty when not per seat. */
  quantity?: number | string | null
  subscription?: AzureSubscription
}

export interface AzurePlan {
  planId: string
  displayName?: string
  isPrivate?: boolean
}

export interface AzurePlansResponse {
  plans?: AzurePlan[]
}

/** An operation of the operations API (`GET …/subscriptions/{id}/operations/{operationId}`). */
export interface AzureOperation {
  id: string
  activityId?: string
  subscriptionId: string
  offerId?: string
  publisherId?: string
  planId?: string
  /** Present for ChangeQuantity; a number or a string. */
  quantity?: number | string | null
  action: string
  timeStamp?: string
  /** NotStarted, InProgress, Failed, Succeeded, Conflict. */
  status?: string
  errorStatusCode?: string
  errorMessage?: string
}
