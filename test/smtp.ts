/** The SMTP server the tests send to is the sandbox's mailbox (sandbox/mailbox.ts). */
export { type ReceivedMail, header, startSmtpServer } from '../sandbox/mailbox'
